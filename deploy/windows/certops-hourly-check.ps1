# certops Layer 2: the hourly, idempotent host check (register it with install-certops-tasks.ps1).
# For every IIS https binding with a host name: find the newest certificate for that name in
# LocalMachine My and WebHosting, test its private key for real (open it, sign, verify with the
# certificate's public key), run certutil -repairstore when the test fails, and check that the
# binding uses that certificate. Names come from each certificate's own SAN extension, not
# DnsNameList (which finds SANs only on English Windows), compared as IDNA A-labels.
# Writes one Application event (source certops) per run, and its key facts (as SYSTEM, the
# account schannel uses the key as) to %ProgramData%\certops\key-verdicts.json, where certops's
# inventory reads them. Exits 1 while anything is wrong, so the task's Last Run Result shows it
# too. -NoRepair only reports.
param([switch]$NoRepair)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'

# >>> certops key test: host_actions/ps/include/key_test.ps1, put into certs.ps1 and
# certops_post_renew.ps1 where they say so; certops-hourly-check.ps1 carries a copy (a test holds
# it equal). Facts only; certops judges them.
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
function Test-CertopsKey($Facts) {
    return ($Facts.signed -and $Facts.verified -ne $false -and $Facts.is_machine_key -ne $false)
}
function Read-CertopsDerLength([byte[]]$B, [int]$I) {
    $first = [int]$B[$I]
    if ($first -lt 0x80) { return @(1, $first) }
    $n = $first -band 0x7F
    $len = 0
    for ($j = 1; $j -le $n; $j++) { $len = $len * 256 + [int]$B[$I + $j] }
    return @((1 + $n), $len)
}
function Get-CertopsDnsNames($Cert) {
    # dNSName entries ([2] IA5String) of the SAN extension (2.5.29.17), read from its DER
    $idn = New-Object Globalization.IdnMapping
    $names = New-Object 'Collections.Generic.List[string]'
    $cn = $Cert.GetNameInfo([Security.Cryptography.X509Certificates.X509NameType]::SimpleName, $false)
    if ($cn) { try { $names.Add($idn.GetAscii($cn).ToLowerInvariant()) } catch { $names.Add($cn.ToLowerInvariant()) } }
    foreach ($ext in @($Cert.Extensions)) {
        if ($ext.Oid.Value -ne '2.5.29.17') { continue }
        $b = $ext.RawData
        $l = Read-CertopsDerLength $b 1
        $i = 1 + $l[0]
        $end = $i + $l[1]
        while ($i -lt $end) {
            $tag = $b[$i]
            $l = Read-CertopsDerLength $b ($i + 1)
            $start = $i + 1 + $l[0]
            if ($tag -eq 0x82) { $names.Add([Text.Encoding]::ASCII.GetString($b, $start, $l[1]).ToLowerInvariant()) }
            $i = $start + $l[1]
        }
    }
    return , $names.ToArray()
}
function Test-CertopsCovers([string[]]$Names, [string]$Name) {
    # exactly, or by a wildcard for one label: *.example.com covers www.example.com, not a.b.example.com
    $parent = if ($Name.Contains('.')) { $Name.Substring($Name.IndexOf('.')) } else { $null }
    foreach ($n in $Names) {
        if ($n -eq $Name) { return $true }
        if ($parent -and $n.StartsWith('*.') -and $n.Substring(1) -eq $parent) { return $true }
    }
    return $false
}
function Test-CertopsServerCert($Cert) {
    # never "the newest": a staging certificate (wacs --test: a "(STAGING)" or "Fake LE" issuer, or
    # a chain that reaches no trusted root) or one whose EKU does not allow serverAuth
    if ($Cert.Issuer -match '\(STAGING\)|\bFake LE\b') { return $false }
    foreach ($ext in @($Cert.Extensions)) {
        if ($ext.Oid.Value -ne '2.5.29.37') { continue }
        $eku = New-Object Security.Cryptography.X509Certificates.X509EnhancedKeyUsageExtension -ArgumentList $ext, $ext.Critical
        $oids = @($eku.EnhancedKeyUsages | ForEach-Object { $_.Value })
        if (-not (($oids -contains '1.3.6.1.5.5.7.3.1') -or ($oids -contains '2.5.29.37.0'))) { return $false }
    }
    $chain = New-Object Security.Cryptography.X509Certificates.X509Chain -ArgumentList $true
    try {
        $chain.ChainPolicy.RevocationMode = [Security.Cryptography.X509Certificates.X509RevocationMode]::NoCheck
        $chain.ChainPolicy.UrlRetrievalTimeout = New-Object TimeSpan -ArgumentList 0, 0, 2
        $null = $chain.Build($Cert)
        $untrusted = @($chain.ChainStatus | Where-Object { @('UntrustedRoot', 'PartialChain', 'ExplicitDistrust') -contains [string]$_.Status })
        return ($untrusted.Count -eq 0)
    } finally { $chain.Reset() }
}

$certs = New-Object 'Collections.Generic.List[object]'
$problems = New-Object 'Collections.Generic.List[string]'
$notes = New-Object 'Collections.Generic.List[string]'
$tested = @{}
foreach ($store in @('My', 'WebHosting')) {
    if (-not (Test-Path -LiteralPath "Cert:\LocalMachine\$store")) { continue }
    foreach ($c in @(Get-ChildItem -LiteralPath "Cert:\LocalMachine\$store")) {
        try { $certs.Add([pscustomobject]@{ Store = $store; Cert = $c; Names = (Get-CertopsDnsNames $c) }) }
        catch { $problems.Add("$($c.Thumbprint): its names could not be read: $($_.Exception.Message)") }
    }
}
$mwa = "$env:windir\System32\inetsrv\Microsoft.Web.Administration.dll"
$sm = $null
try {
    if (Test-Path -LiteralPath $mwa) { Add-Type -Path $mwa }
    else { $null = [Reflection.Assembly]::Load('Microsoft.Web.Administration, Version=7.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35') }
    $sm = New-Object Microsoft.Web.Administration.ServerManager
} catch { $problems.Add("IIS configuration could not be read: $($_.Exception.Message)") }
$idn = New-Object Globalization.IdnMapping
foreach ($site in @(if ($sm) { $sm.Sites })) {
    foreach ($b in @($site.Bindings)) {
        try {
            if ($b.Protocol -ne 'https' -or ($b.SslFlags -band 2)) { continue }
            # "IP:port:host"; an IPv6 address is bracketed and holds colons itself
            if ($b.BindingInformation -notmatch '^(\[[^\]]*\]|[^:]*):([0-9]*):(.*)$') { continue }
            $name = $Matches[3]
            if (-not $name) { continue }
            $name = $idn.GetAscii($name).ToLowerInvariant()
            $newest = $certs | Where-Object { (Test-CertopsCovers $_.Names $name) -and (Test-CertopsServerCert $_.Cert) } |
                Sort-Object { $_.Cert.NotBefore } -Descending | Select-Object -First 1
            if ($null -eq $newest) { $problems.Add("${name}: no certificate for this name"); continue }
            $tp = $newest.Cert.Thumbprint
            # the same thumbprint in My and WebHosting: the copy in the store the binding names is
            # the one schannel uses, each copy with its own key link
            $bindingStore = [string]$b.CertificateStoreName
            $copy = $certs | Where-Object { $_.Cert.Thumbprint -eq $tp -and $_.Store -eq $bindingStore } | Select-Object -First 1
            if ($null -ne $copy) { $newest = $copy }
            $facts = Get-CertopsKeyFacts $newest.Cert
            if (-not (Test-CertopsKey $facts)) {
                if ($NoRepair) {
                    $problems.Add("${name}: private key of $tp unusable (not repaired: -NoRepair)")
                } else {
                    $ErrorActionPreference = 'Continue'  # 5.1 would throw on certutil's stderr under 'Stop'
                    $out = (& certutil.exe -silent -repairstore $newest.Store $tp 2>&1 | Out-String)
                    $ErrorActionPreference = 'Stop'
                    $facts = Get-CertopsKeyFacts (Get-Item -LiteralPath "Cert:\LocalMachine\$($newest.Store)\$tp")
                    if (Test-CertopsKey $facts) { $notes.Add("${name}: repaired the key link of $tp") }
                    else { $problems.Add("${name}: key of $tp still unusable after certutil -repairstore: $out") }
                }
            }
            $tested[$tp] = @{ store = $newest.Store; thumbprint = $tp; has_private_key = $newest.Cert.HasPrivateKey; key = $facts }
            $bound = ''
            if ($null -ne $b.CertificateHash) { $bound = [BitConverter]::ToString($b.CertificateHash) -replace '-', '' }
            if ($bound -ne $tp) { $problems.Add("${name}: binding uses $bound, newest certificate is $tp") }
        } catch { $problems.Add("binding $($b.BindingInformation) could not be checked: $($_.Exception.Message)") }
    }
}
try {
    $state = @{ at = [DateTime]::UtcNow.ToString('o'); identity = [Security.Principal.WindowsIdentity]::GetCurrent().Name
        certs = @($tested.Values); problems = @($problems); notes = @($notes) }
    $dir = "$env:ProgramData\certops"
    if (-not (Test-Path -LiteralPath $dir)) { $null = New-Item -ItemType Directory -Path $dir }
    [IO.File]::WriteAllText((Join-Path $dir 'key-verdicts.json'), (ConvertTo-Json -InputObject $state -Depth 8 -Compress))
} catch { $problems.Add("the key verdicts could not be saved: $($_.Exception.Message)") }
if (-not [Diagnostics.EventLog]::SourceExists('certops')) { New-EventLog -LogName Application -Source 'certops' }
$text = (@($notes) + @($problems)) -join "`r`n"
if ($problems.Count -gt 0) {
    Write-EventLog -LogName Application -Source 'certops' -EventId 2 -EntryType Error -Message $text
    exit 1
}
if (-not $text) { $text = 'all https bindings use the newest certificate, and its key works' }
Write-EventLog -LogName Application -Source 'certops' -EventId 1 -EntryType Information -Message $text
exit 0
