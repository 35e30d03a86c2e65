# certops-script: certs
# Certificates in LocalMachine My and WebHosting, with a real test of each private key:
# HasPrivateKey only says the key-link property exists, so open the key, sign a few bytes and
# verify the signature with the certificate's public key. Each certificate's RawData goes to
# certops as base64: names, EKU, issuer and dates are read from it in Python (DnsNameList
# misses SANs on non-English Windows). Raw facts only; certops decides what they mean.
# The hourly Layer 2 task (SYSTEM) leaves its own key facts in a state file; it is passed on raw.
param(
    [ValidateSet('My', 'WebHosting')][string[]]$Stores = @('My', 'WebHosting'),
    [ValidatePattern('^([0-9A-F]{40})?$')][string]$Thumbprint = ''
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
# certops: include key_test.ps1
function Get-CertopsChain($Cert) {
    # Does the chain reach a root the machine trusts? A `wacs --test` (staging) certificate lands
    # in the same store and must never be "the newest". Revocation is not checked and downloads of
    # missing intermediates wait at most 2 s; the status flag names are not localised.
    $chain = New-Object Security.Cryptography.X509Certificates.X509Chain -ArgumentList $true
    try {
        $chain.ChainPolicy.RevocationMode = [Security.Cryptography.X509Certificates.X509RevocationMode]::NoCheck
        $chain.ChainPolicy.UrlRetrievalTimeout = New-Object TimeSpan -ArgumentList 0, 0, 2
        $built = $chain.Build($Cert)
        return @{ built = $built; status = @($chain.ChainStatus | ForEach-Object { [string]$_.Status }) }
    } catch {
        return @{ built = $false; error = $_.Exception.Message }
    } finally { $chain.Reset() }
}
$list = New-Object 'Collections.Generic.List[object]'
$errors = New-Object 'Collections.Generic.List[object]'
foreach ($store in $Stores) {
    $path = "Cert:\LocalMachine\$store"
    if (-not (Test-Path -LiteralPath $path)) { continue }
    foreach ($c in @(Get-ChildItem -LiteralPath $path)) {
        if ($Thumbprint -and $c.Thumbprint -ne $Thumbprint) { continue }
        try {
            $list.Add(@{
                store = $store
                thumbprint = $c.Thumbprint
                raw = [Convert]::ToBase64String($c.RawData)
                subject = $c.Subject
                sans = @($c.DnsNameList | ForEach-Object { $_.Unicode })
                friendly_name = $c.FriendlyName
                not_before = $c.NotBefore.ToUniversalTime().ToString('o')
                not_after = $c.NotAfter.ToUniversalTime().ToString('o')
                issuer = $c.Issuer
                serial = $c.SerialNumber
                has_private_key = $c.HasPrivateKey
                key = (Get-CertopsKeyFacts $c)
                chain = (Get-CertopsChain $c)
            })
        } catch {
            $errors.Add(@{ store = $store; thumbprint = $c.Thumbprint; error = $_.Exception.Message })
        }
    }
}
$layer2 = $null
$state = "$env:ProgramData\certops\key-verdicts.json"
if (Test-Path -LiteralPath $state) {
    try { $layer2 = [IO.File]::ReadAllText($state) } catch { $errors.Add(@{ error = $_.Exception.Message }) }
}
@{ certs = @($list); errors = @($errors); layer2 = $layer2 }
