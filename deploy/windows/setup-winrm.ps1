# certops access: the WinRM endpoint certops reaches this host by, and the account it logs on
# with (docs/windows-host.md explains each choice). Run it as Administrator:
#   .\setup-winrm.ps1 -Thumbprint <40 hex> -BotAddress 192.0.2.50 -DomainAccount 'EXAMPLE\svc-certops'
#   .\setup-winrm.ps1 -Thumbprint <40 hex> -BotAddress 192.0.2.50 -AllowRemoteLocalAdmin   # local svc-certops
# It makes exactly one WinRM HTTPS listener (port 5986, every address) with the certificate you
# name, after checking it: in LocalMachine\My with a private key, for server authentication,
# valid for at least 30 more days, covering -HostName, and not one win-acme manages (win-acme
# renews and deletes its certificates, which would break the listener under certops). Use a
# long-lived certificate from an internal CA, or a self-signed one the bot pins with ca_file.
# Any other HTTPS listener is removed; the HTTP listener (5985) is left as it is.
# A firewall rule lets only -BotAddress reach 5986. The account: -DomainAccount (recommended, with
# Kerberos) or a local account (-LocalAccount, default svc-certops, created when missing; its
# password is asked for) is put into the local Administrators group, because the actions read
# machine private keys, repair LocalMachine stores, read and write IIS's configuration, register
# SYSTEM tasks and edit win-acme's files, all Administrators-only. A local account also needs
# -AllowRemoteLocalAdmin (LocalAccountTokenFilterPolicy = 1), which weakens remote UAC for every
# local administrator: read docs/windows-host.md first.
param(
    [Parameter(Mandatory = $true)][ValidatePattern('^[0-9A-Fa-f]{40}$')][string]$Thumbprint,
    [Parameter(Mandatory = $true)][ValidatePattern('^[0-9A-Fa-f:.]{2,45}(/[0-9]{1,3})?$')][string[]]$BotAddress,
    [ValidatePattern('^[A-Za-z0-9][A-Za-z0-9.-]{0,62}\\[A-Za-z0-9][A-Za-z0-9._ -]{0,19}$')][string]$DomainAccount,
    [ValidatePattern('^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$')][string]$LocalAccount = 'svc-certops',
    [ValidatePattern('^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$')][string]$HostName,
    [switch]$AllowRemoteLocalAdmin,
    [ValidatePattern('^[A-Za-z]:\\[^"''`$;|&<>*?]*$')][string]$WinAcmeConfigRoot = "$env:ProgramData\win-acme"
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$Thumbprint = $Thumbprint.ToUpperInvariant()
$ruleName = 'certops-WinRM-HTTPS-In'
$administrators = 'S-1-5-32-544'

$me = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $me.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) { throw 'run this as Administrator (an elevated PowerShell)' }
if (-not $HostName) { $HostName = [Net.Dns]::GetHostEntry([Environment]::MachineName).HostName }
$HostName = $HostName.ToLowerInvariant()

# -- the certificate ------------------------------------------------------------------------
$path = "Cert:\LocalMachine\My\$Thumbprint"
if (-not (Test-Path -LiteralPath $path)) { throw "certificate $Thumbprint is not in LocalMachine\My (WinRM takes its listener certificate from there)" }
$cert = Get-Item -LiteralPath $path
if (-not $cert.HasPrivateKey) { throw "certificate $Thumbprint has no private key" }
if ($cert.NotAfter -lt (Get-Date).AddDays(30)) { throw "certificate $Thumbprint expires on $($cert.NotAfter); choose a long-lived one" }
if ($cert.NotAfter -lt (Get-Date).AddDays(365)) { Write-Warning "certificate $Thumbprint expires on $($cert.NotAfter), within a year: certops loses this host then" }
foreach ($ext in @($cert.Extensions)) {
    if ($ext.Oid.Value -ne '2.5.29.37') { continue }
    $eku = New-Object Security.Cryptography.X509Certificates.X509EnhancedKeyUsageExtension -ArgumentList $ext, $ext.Critical
    $oids = @($eku.EnhancedKeyUsages | ForEach-Object { $_.Value })
    if (-not (($oids -contains '1.3.6.1.5.5.7.3.1') -or ($oids -contains '2.5.29.37.0'))) { throw "certificate $Thumbprint is not for server authentication" }
}
# win-acme's own certificates: an ACME issuer, or a thumbprint a renewal file names
if ($cert.Issuer -match "O=Let's Encrypt|\(STAGING\)|\bFake LE\b|O=ZeroSSL|O=Buypass|O=Google Trust Services") {
    throw "certificate $Thumbprint is issued by an ACME CA ($($cert.Issuer)): win-acme renews such certificates and deletes the old one, which would break the listener. Use a long-lived certificate from an internal CA or a self-signed one"
}
if (Test-Path -LiteralPath $WinAcmeConfigRoot) {
    foreach ($file in @(Get-ChildItem -LiteralPath $WinAcmeConfigRoot -Recurse -Filter '*.renewal.json' -File -ErrorAction SilentlyContinue)) {
        if ([IO.File]::ReadAllText($file.FullName) -match $Thumbprint) {
            throw "certificate $Thumbprint belongs to the win-acme renewal $($file.FullName): win-acme renews and deletes it. Use another certificate"
        }
    }
}
$names = @($cert.DnsNameList | ForEach-Object { $_.Unicode.ToLowerInvariant() })
$cn = $cert.GetNameInfo([Security.Cryptography.X509Certificates.X509NameType]::SimpleName, $false)
if ($cn) { $names += $cn.ToLowerInvariant() }
$parent = if ($HostName.Contains('.')) { $HostName.Substring($HostName.IndexOf('.')) } else { $null }
$covered = @($names | Where-Object { $_ -eq $HostName -or ($parent -and $_ -eq "*$parent") }).Count -gt 0
if (-not $covered) {
    throw "certificate $Thumbprint is for $($names -join ', '), not ${HostName}: certops checks the name it connects to. Pass -HostName with the name in the certificate"
}

# -- the account ----------------------------------------------------------------------------
function Add-CertopsAdministrator([string]$Member) {
    try { Add-LocalGroupMember -SID $administrators -Member $Member }
    catch { if ($_.FullyQualifiedErrorId -notlike 'MemberExists*') { throw } }
}
if ($DomainAccount) {
    Add-CertopsAdministrator $DomainAccount
    $account = $DomainAccount
} else {
    if ($null -eq (Get-LocalUser -Name $LocalAccount -ErrorAction SilentlyContinue)) {
        $password = Read-Host -AsSecureString "A password for the new local account $LocalAccount (put the same into the bot's password_env or password_file)"
        $null = New-LocalUser -Name $LocalAccount -Password $password -PasswordNeverExpires -AccountNeverExpires -UserMayNotChangePassword `
            -Description 'certops: certificate checks and repairs over WinRM'
        Write-Output "Created the local account $LocalAccount."
    }
    Add-CertopsAdministrator $LocalAccount
    $account = "$env:COMPUTERNAME\$LocalAccount"
    $policy = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System'
    if ($AllowRemoteLocalAdmin) {
        $null = New-ItemProperty -Path $policy -Name 'LocalAccountTokenFilterPolicy' -PropertyType DWord -Value 1 -Force
        Write-Warning 'LocalAccountTokenFilterPolicy = 1: every local administrator account now gets its full token over the network'
    } else {
        $value = (Get-ItemProperty -Path $policy -Name 'LocalAccountTokenFilterPolicy' -ErrorAction SilentlyContinue).LocalAccountTokenFilterPolicy
        if ($value -ne 1) {
            Write-Warning "$LocalAccount is a local account: remote UAC gives it a filtered (non-administrator) token over WinRM, so certops's actions fail until -AllowRemoteLocalAdmin sets LocalAccountTokenFilterPolicy = 1. A domain account (-DomainAccount) needs neither"
        }
    }
}

# -- the listener ---------------------------------------------------------------------------
Set-Service -Name WinRM -StartupType Automatic
Start-Service -Name WinRM
foreach ($listener in @(Get-ChildItem -Path 'WSMan:\localhost\Listener')) {
    if ($listener.Keys -contains 'Transport=HTTPS') {
        Remove-Item -LiteralPath $listener.PSPath -Recurse -Force
        Write-Output "Removed the HTTPS listener $($listener.Name) ($($listener.Keys -join ', '))."
    }
}
$null = New-WSManInstance -ResourceURI 'winrm/config/Listener' -SelectorSet @{ Address = '*'; Transport = 'HTTPS' } `
    -ValueSet @{ Hostname = $HostName; CertificateThumbprint = $Thumbprint }
foreach ($setting in @('AllowUnencrypted', 'Auth\Basic')) {
    if ((Get-Item -LiteralPath "WSMan:\localhost\Service\$setting").Value -eq 'true') {
        Write-Warning "WSMan:\localhost\Service\$setting is true; certops needs neither (Kerberos or NTLM over HTTPS)"
    }
}

# -- the firewall ---------------------------------------------------------------------------
Get-NetFirewallRule -Name $ruleName -ErrorAction SilentlyContinue | Remove-NetFirewallRule
$null = New-NetFirewallRule -Name $ruleName -DisplayName 'certops: WinRM over HTTPS from the certops bot' -Direction Inbound `
    -Protocol TCP -LocalPort 5986 -RemoteAddress $BotAddress -Action Allow -Profile Any
try {
    $others = @(Get-NetFirewallPortFilter -Protocol TCP | Where-Object { @($_.LocalPort) -contains '5986' } | Get-NetFirewallRule |
            Where-Object { $_.Name -ne $ruleName -and [string]$_.Enabled -eq 'True' -and [string]$_.Direction -eq 'Inbound' -and [string]$_.Action -eq 'Allow' })
    foreach ($rule in $others) { Write-Warning "the firewall rule '$($rule.DisplayName)' also lets others reach 5986; disable it if certops is the only client" }
} catch { Write-Warning "the other firewall rules could not be read: $($_.Exception.Message)" }

$transport = if ($DomainAccount) { 'kerberos' } else { 'ntlm' }
Write-Output ''
Write-Output "WinRM HTTPS listener: https://${HostName}:5986/wsman with $Thumbprint (expires $($cert.NotAfter.ToString('yyyy-MM-dd')))"
Write-Output "Reachable from: $($BotAddress -join ', ') (firewall rule $ruleName)"
Write-Output "Account: $account (local Administrators)"
Write-Output ''
Write-Output 'In certops.toml:'
Write-Output '[[hosts]]'
Write-Output 'name = "iis01"                         # this host'
Write-Output "address = `"https://${HostName}:5986/wsman`""
Write-Output "transport = `"$transport`""
if (-not $DomainAccount) { Write-Output "username = `"$LocalAccount`"`r`npassword_env = `"CERTOPS_IIS01_PASSWORD`"" }
Write-Output 'ca_file = "/etc/certops/winrm-ca.pem"  # the CA of this certificate, or the self-signed certificate itself'
Write-Output ''
Write-Output 'Then, on the bot: certops host inventory iis01'
