# certops-script: rebind
# Points every https binding of one IIS site at one certificate. IIS writes the http.sys
# binding itself on commit (as win-acme's IIS installer does).
param(
    [Parameter(Mandatory = $true)][ValidatePattern('^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,99}$')][string]$Site,
    [Parameter(Mandatory = $true)][ValidatePattern('^[0-9A-F]{40}$')][string]$Thumbprint,
    [Parameter(Mandatory = $true)][ValidateSet('My', 'WebHosting')][string]$Store
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
if (-not (Test-Path -LiteralPath "Cert:\LocalMachine\$Store\$Thumbprint")) {
    throw "certificate $Thumbprint is not in LocalMachine\$Store"
}
$mwa = "$env:windir\System32\inetsrv\Microsoft.Web.Administration.dll"
if (Test-Path -LiteralPath $mwa) { Add-Type -Path $mwa }  # the partial-name load fails on some hosts
else { $null = [Reflection.Assembly]::Load('Microsoft.Web.Administration, Version=7.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35') }
$sm = New-Object Microsoft.Web.Administration.ServerManager
$s = $sm.Sites[$Site]
if ($null -eq $s) { throw "IIS has no site named $Site" }
$hash = [byte[]]::new(20)
for ($i = 0; $i -lt 20; $i++) { $hash[$i] = [Convert]::ToByte($Thumbprint.Substring($i * 2, 2), 16) }
$changed = New-Object 'Collections.Generic.List[object]'
foreach ($b in @($s.Bindings)) {
    if ($b.Protocol -ne 'https') { continue }
    $b.CertificateHash = $hash
    $b.CertificateStoreName = $Store
    $changed.Add($b.BindingInformation)
}
$sm.CommitChanges()
@{ changed = @($changed) }
