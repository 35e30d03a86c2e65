# certops-script: certs
# Certificates in LocalMachine My and WebHosting, with a real test of each private key:
# HasPrivateKey only says the key-link property exists, so open the key and sign a few bytes.
# Raw facts only (HRESULTs, provider names); certops decides what they mean.
param(
    [ValidateSet('My', 'WebHosting')][string[]]$Stores = @('My', 'WebHosting'),
    [ValidatePattern('^([0-9A-F]{40})?$')][string]$Thumbprint = ''
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$X509 = 'Security.Cryptography.X509Certificates'
$list = New-Object 'Collections.Generic.List[object]'
foreach ($store in $Stores) {
    $path = "Cert:\LocalMachine\$store"
    if (-not (Test-Path -LiteralPath $path)) { continue }
    foreach ($c in @(Get-ChildItem -LiteralPath $path)) {
        if ($Thumbprint -and $c.Thumbprint -ne $Thumbprint) { continue }
        $key = @{ opened = $false; signed = $false; hresult = $null; message = $null;
                  provider = $null; container = $null; file = $null; file_exists = $null }
        if ($c.HasPrivateKey) {
            try {
                $k = [Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($c)
                if ($null -eq $k) {
                    $k = [Security.Cryptography.X509Certificates.ECDsaCertificateExtensions]::GetECDsaPrivateKey($c)
                }
                if ($null -ne $k) {
                    $key.opened = $true
                    if ($k -is [Security.Cryptography.RSA]) {
                        $null = $k.SignData([byte[]](1, 2, 3), [Security.Cryptography.HashAlgorithmName]::SHA256,
                            [Security.Cryptography.RSASignaturePadding]::Pkcs1)
                    } else {
                        $null = $k.SignData([byte[]](1, 2, 3), [Security.Cryptography.HashAlgorithmName]::SHA256)
                    }
                    $key.signed = $true
                    if ($k.PSObject.Properties['Key']) {
                        $key.provider = $k.Key.Provider.Provider
                        $key.container = $k.Key.UniqueName
                        $dir = "$env:ProgramData\Microsoft\Crypto\Keys"
                    } else {
                        $key.provider = $k.CspKeyContainerInfo.ProviderName
                        $key.container = $k.CspKeyContainerInfo.UniqueKeyContainerName
                        $dir = "$env:ProgramData\Microsoft\Crypto\RSA\MachineKeys"
                    }
                    if ($key.container) {
                        $key.file = Join-Path $dir $key.container
                        $key.file_exists = Test-Path -LiteralPath $key.file
                    }
                }
            } catch {
                $e = $_.Exception
                while ($null -ne $e.InnerException) { $e = $e.InnerException }
                $key.hresult = '0x{0:X8}' -f $e.HResult
                $key.message = $e.Message
            }
        }
        $list.Add(@{
            store = $store
            thumbprint = $c.Thumbprint
            subject = $c.Subject
            sans = @($c.DnsNameList | ForEach-Object { $_.Unicode })
            friendly_name = $c.FriendlyName
            not_before = $c.NotBefore.ToUniversalTime().ToString('o')
            not_after = $c.NotAfter.ToUniversalTime().ToString('o')
            issuer = $c.Issuer
            serial = $c.SerialNumber
            has_private_key = $c.HasPrivateKey
            key = $key
        })
    }
}
@{ certs = @($list) }
