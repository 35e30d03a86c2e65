# certops-script: certops_post_renew
# Layer 3: win-acme runs this right after its IIS installation step, as
#   certops_post_renew.ps1 -Thumbprint {CertThumbprint}
# It tests the new certificate's private key for real (open it, sign, verify the signature
# with the certificate's public key; RSA or ECDSA), rebuilds the
# certificate-to-key link with certutil -repairstore when the test fails, and checks that
# http.sys serves the new certificate. A non-zero exit makes win-acme mark the step failed.
param([Parameter(Mandatory = $true)][ValidatePattern('^[0-9A-Fa-f]{40}$')][string]$Thumbprint)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$Thumbprint = $Thumbprint.ToUpperInvariant()
# certops: include key_test.ps1
function Test-CertopsKey([string]$Path) {
    # the one judgement made on the host: certops cannot be asked in the middle of a renewal
    $f = Get-CertopsKeyFacts (Get-Item -LiteralPath $Path)
    return ($f.signed -and $f.verified -ne $false -and $f.is_machine_key -ne $false)
}
$store = $null
foreach ($s in @('WebHosting', 'My')) {
    if (Test-Path -LiteralPath "Cert:\LocalMachine\$s\$Thumbprint") { $store = $s; break }
}
if ($null -eq $store) { Write-Output "certops: $Thumbprint is in neither My nor WebHosting"; exit 3 }
$path = "Cert:\LocalMachine\$store\$Thumbprint"
if (-not (Test-CertopsKey $path)) {
    Write-Output "certops: private key of $Thumbprint unusable; running certutil -repairstore $store"
    $ErrorActionPreference = 'Continue'  # 5.1 would throw on certutil's stderr under 'Stop'
    $out = (& certutil.exe -silent -repairstore $store $Thumbprint 2>&1 | Out-String)
    $ErrorActionPreference = 'Stop'
    Write-Output $out
    if (-not (Test-CertopsKey $path)) { Write-Output 'certops: key still unusable after repair'; exit 1 }
}
$ErrorActionPreference = 'Continue'  # netsh writing to stderr must not end the script under 'Stop'
$bound = (& netsh.exe http show sslcert 2>&1 | Out-String) -match $Thumbprint
$ErrorActionPreference = 'Stop'
if (-not $bound) { Write-Output "certops: http.sys has no binding for $Thumbprint"; exit 2 }
Write-Output "certops: $Thumbprint in $store has a working key and is bound"
exit 0
