# >>> certops key test: host_actions/ps/include/key_test.ps1, put into certs.ps1 and the layer
# scripts (self-heal.ps1, post-renew.ps1) where they say so; the standalone copies in
# deploy/windows are generated from them (a test holds them equal). Facts only; certops judges them.
function Get-CertopsKeyLink($Cert) {
    # CERT_KEY_PROV_INFO_PROP_ID (2) names the key container even when the key cannot be opened
    if (-not ('Certops.Crypt32' -as [type])) {
        Add-Type -Namespace Certops -Name Crypt32 -MemberDefinition ('[DllImport("crypt32.dll", SetLastError = true)] ' +
            'public static extern bool CertGetCertificateContextProperty(IntPtr ctx, int prop, IntPtr data, ref int size);')
    }
    $size = 0
    if (-not [Certops.Crypt32]::CertGetCertificateContextProperty($Cert.Handle, 2, [IntPtr]::Zero, [ref]$size)) { return $null }
    $buf = [Runtime.InteropServices.Marshal]::AllocHGlobal($size)
    try {
        if (-not [Certops.Crypt32]::CertGetCertificateContextProperty($Cert.Handle, 2, $buf, [ref]$size)) { return $null }
        $p = [IntPtr]::Size
        return @{
            container = [Runtime.InteropServices.Marshal]::PtrToStringUni([Runtime.InteropServices.Marshal]::ReadIntPtr($buf, 0))
            provider = [Runtime.InteropServices.Marshal]::PtrToStringUni([Runtime.InteropServices.Marshal]::ReadIntPtr($buf, $p))
            provider_type = [Runtime.InteropServices.Marshal]::ReadInt32($buf, 2 * $p)
            machine_keyset = (([Runtime.InteropServices.Marshal]::ReadInt32($buf, 2 * $p + 4) -band 0x20) -ne 0)
        }
    } finally { [Runtime.InteropServices.Marshal]::FreeHGlobal($buf) }
}
function Get-CertopsHResult($Err) {
    $e = $Err.Exception
    while ($null -ne $e.InnerException) { $e = $e.InnerException }
    return @('0x{0:X8}' -f $e.HResult, $e.Message)
}
function Get-CertopsKeyFacts($Cert) {
    $f = @{ opened = $false; signed = $false; verified = $null; algorithm = $null; hresult = $null; message = $null
        key_class = $null; provider = $null; container = $null; is_machine_key = $null; link = $null
        container_exists = $null; exists_hresult = $null; files = @(); file = $null; file_exists = $null
        identity = [Security.Principal.WindowsIdentity]::GetCurrent().Name }
    $oid = $Cert.PublicKey.Oid.Value
    if ($oid -eq '1.2.840.113549.1.1.1') { $f.algorithm = 'RSA' } elseif ($oid -eq '1.2.840.10045.2.1') { $f.algorithm = 'ECDSA' }
    if (-not $Cert.HasPrivateKey) { return $f }
    try { $f.link = Get-CertopsKeyLink $Cert } catch { $f.link = $null }
    if ($f.link) {
        try {
            if ($f.link.provider_type -eq 0) {
                $opt = [Security.Cryptography.CngKeyOpenOptions]::None
                if ($f.link.machine_keyset) { $opt = [Security.Cryptography.CngKeyOpenOptions]::MachineKey }
                $f.container_exists = [Security.Cryptography.CngKey]::Exists($f.link.container,
                    (New-Object Security.Cryptography.CngProvider $f.link.provider), $opt)
            } else {
                $cp = New-Object Security.Cryptography.CspParameters $f.link.provider_type, $f.link.provider, $f.link.container
                $cp.Flags = [Security.Cryptography.CspProviderFlags]::UseExistingKey -bor [Security.Cryptography.CspProviderFlags]::NoPrompt
                if ($f.link.machine_keyset) { $cp.Flags = $cp.Flags -bor [Security.Cryptography.CspProviderFlags]::UseMachineKeyStore }
                $csp = New-Object Security.Cryptography.RSACryptoServiceProvider -ArgumentList $cp
                $csp.Dispose()
                $f.container_exists = $true
            }
        } catch {
            $h = Get-CertopsHResult $_
            $f.exists_hresult = $h[0]
            if ($h[0] -eq '0x80090016') { $f.container_exists = $false }
        }
    }
    try {
        $k = $null
        if ($f.algorithm -eq 'RSA') { $k = [Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Cert) }
        elseif ($f.algorithm -eq 'ECDSA') { $k = [Security.Cryptography.X509Certificates.ECDsaCertificateExtensions]::GetECDsaPrivateKey($Cert) }
        if ($null -eq $k) {
            $f.message = 'no private key object (null)'
        } else {
            $f.opened = $true
            $f.key_class = $k.GetType().Name
            if ($k.PSObject.Properties['Key']) {
                $f.provider = $k.Key.Provider.Provider
                $f.container = $k.Key.UniqueName
                $f.is_machine_key = $k.Key.IsMachineKey
            } elseif ($k.PSObject.Properties['CspKeyContainerInfo']) {
                $f.provider = $k.CspKeyContainerInfo.ProviderName
                $f.container = $k.CspKeyContainerInfo.UniqueKeyContainerName
                $f.is_machine_key = $k.CspKeyContainerInfo.MachineKeyStore
            }
            $d = [byte[]](1..32)
            $sha = [Security.Cryptography.HashAlgorithmName]::SHA256
            if ($f.algorithm -eq 'RSA') {
                $pad = [Security.Cryptography.RSASignaturePadding]::Pkcs1
                $sig = $k.SignData($d, $sha, $pad)
                $f.signed = $true
                $pub = [Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPublicKey($Cert)
                $f.verified = $pub.VerifyData($d, $sig, $sha, $pad)
            } else {
                $sig = $k.SignData($d, $sha)
                $f.signed = $true
                $pub = [Security.Cryptography.X509Certificates.ECDsaCertificateExtensions]::GetECDsaPublicKey($Cert)
                $f.verified = $pub.VerifyData($d, $sig, $sha)
            }
        }
    } catch {
        $h = Get-CertopsHResult $_
        $f.hresult = $h[0]
        $f.message = $h[1]
    }
    if ($f.container) {
        # a CAPI key opened through CNG (GetRSAPrivateKey gives RSACng for it) lives in RSA\MachineKeys
        $sid = [Security.Principal.WindowsIdentity]::GetCurrent().User.Value
        $dirs = @(@('RSA\MachineKeys', "$env:ProgramData\Microsoft\Crypto\RSA\MachineKeys"),
            @('Keys', "$env:ProgramData\Microsoft\Crypto\Keys"), @('SystemKeys', "$env:ProgramData\Microsoft\Crypto\SystemKeys"),
            @('user RSA', "$env:APPDATA\Microsoft\Crypto\RSA\$sid"), @('user Keys', "$env:APPDATA\Microsoft\Crypto\Keys"))
        $files = New-Object 'Collections.Generic.List[object]'
        foreach ($dir in $dirs) {
            $path = Join-Path $dir[1] $f.container
            $exists = Test-Path -LiteralPath $path
            $files.Add(@{ folder = $dir[0]; path = $path; exists = $exists })
            if ($exists -and -not $f.file) { $f.file = $path; $f.file_exists = $true }
        }
        if (-not $f.file) { $f.file = $files[0].path; $f.file_exists = $false }
        $f.files = @($files)
    }
    return $f
}
# <<< certops key test
