# certops Layer 2: the hourly, idempotent host check (register it with install-certops-tasks.ps1).
# For every IIS https binding with a host name: find the newest certificate for that name in
# LocalMachine My and WebHosting, test its private key for real (open it and sign), run
# certutil -repairstore when the test fails, and check that the binding uses that certificate.
# Writes one Application event (source certops) per run and exits 1 while anything is wrong,
# so the task's Last Run Result shows it too. -NoRepair only reports.
param([switch]$NoRepair)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'

function Test-CertopsKey($Cert) {
    if (-not $Cert.HasPrivateKey) { return $false }
    try {
        $k = [Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Cert)
        if ($null -ne $k) {
            $null = $k.SignData([byte[]](1, 2, 3), [Security.Cryptography.HashAlgorithmName]::SHA256,
                [Security.Cryptography.RSASignaturePadding]::Pkcs1)
            return $true
        }
        $k = [Security.Cryptography.X509Certificates.ECDsaCertificateExtensions]::GetECDsaPrivateKey($Cert)
        if ($null -eq $k) { return $false }
        $null = $k.SignData([byte[]](1, 2, 3), [Security.Cryptography.HashAlgorithmName]::SHA256)
        return $true
    } catch { return $false }
}

$certs = New-Object 'Collections.Generic.List[object]'
foreach ($store in @('My', 'WebHosting')) {
    if (-not (Test-Path -LiteralPath "Cert:\LocalMachine\$store")) { continue }
    foreach ($c in @(Get-ChildItem -LiteralPath "Cert:\LocalMachine\$store")) {
        $certs.Add([pscustomobject]@{ Store = $store; Cert = $c; Names = @($c.DnsNameList | ForEach-Object { $_.Unicode }) })
    }
}
$problems = New-Object 'Collections.Generic.List[string]'
$notes = New-Object 'Collections.Generic.List[string]'
Add-Type -AssemblyName 'Microsoft.Web.Administration'
$sm = New-Object Microsoft.Web.Administration.ServerManager
foreach ($site in $sm.Sites) {
    foreach ($b in $site.Bindings) {
        if ($b.Protocol -ne 'https') { continue }
        $name = ($b.BindingInformation -split ':', 3)[2]
        if (-not $name) { continue }
        $newest = $certs | Where-Object { $_.Names -contains $name } |
            Sort-Object { $_.Cert.NotBefore } -Descending | Select-Object -First 1
        if ($null -eq $newest) { $problems.Add("${name}: no certificate for this name"); continue }
        $tp = $newest.Cert.Thumbprint
        if (-not (Test-CertopsKey $newest.Cert)) {
            if ($NoRepair) {
                $problems.Add("${name}: private key of $tp unusable (not repaired: -NoRepair)")
            } else {
                $ErrorActionPreference = 'Continue'  # 5.1 would throw on certutil's stderr under 'Stop'
                $out = (& certutil.exe -repairstore $newest.Store $tp 2>&1 | Out-String)
                $ErrorActionPreference = 'Stop'
                $fresh = Get-Item -LiteralPath "Cert:\LocalMachine\$($newest.Store)\$tp"
                if (Test-CertopsKey $fresh) { $notes.Add("${name}: repaired the key link of $tp") }
                else { $problems.Add("${name}: key of $tp still unusable after certutil -repairstore: $out") }
            }
        }
        $bound = ''
        if ($null -ne $b.CertificateHash) { $bound = [BitConverter]::ToString($b.CertificateHash) -replace '-', '' }
        if ($bound -ne $tp) { $problems.Add("${name}: binding uses $bound, newest certificate is $tp") }
    }
}
if (-not [Diagnostics.EventLog]::SourceExists('certops')) { New-EventLog -LogName Application -Source 'certops' }
$text = (@($notes) + @($problems)) -join "`r`n"
if ($problems.Count -gt 0) {
    Write-EventLog -LogName Application -Source 'certops' -EventId 2 -EntryType Error -Message $text
    exit 1
}
if (-not $text) { $text = 'all https bindings use the newest certificate, and its key works' }
Write-EventLog -LogName Application -Source 'certops' -EventId 1 -EntryType Information -Message $text
exit 0
