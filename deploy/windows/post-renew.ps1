# certops-script: certops_post_renew
# certops Layer 3: post-renew.ps1, installed as <wacs folder>\Scripts\certops_post_renew.ps1 and
# run by win-acme as SYSTEM right after its IIS installation step, as
#   certops_post_renew.ps1 -Thumbprint {CertThumbprint}
# (certops host add-post-renew-step HOST RENEWAL_ID adds that Script step). Idempotent.
# It finds the new certificate in LocalMachine WebHosting or My, tests its private key for real
# (open it, sign, verify the signature with the certificate's public key; RSA or ECDSA), rebuilds
# the certificate-to-key link with certutil -silent -repairstore when the test fails (only then),
# and checks that the IIS https bindings whose names it is the newest certificate for, and the
# http.sys entries serving them, point at it. It never changes a binding: a wrong one is reported.
# Logs to %ProgramData%\certops\logs\post-renew-YYYYMMDD.log (UTC days, 14 kept, 5 MB a day) and
# to the console (win-acme's log), and reports to the bot (kind post-renew, docs/report-api.md)
# when %ProgramData%\certops\report.json and report.key exist.
# Exit codes (win-acme logs a non-zero one and marks the step failed): 0 ok, 1 the key is still
# unusable, 2 anything else is wrong (a binding, or the check could not finish), 3 the certificate
# is in neither store.
# Generated file: edit host_actions/ps/layers/post-renew.ps1 and the includes it names, then run
# python -m host_actions.layers --write deploy/windows
param([Parameter(Mandatory = $true)][ValidatePattern('^[0-9A-Fa-f]{40}$')][string]$Thumbprint)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$Thumbprint = $Thumbprint.ToUpperInvariant()

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
# >>> certops layer common: host_actions/ps/layers/layer_common.ps1, put into self-heal.ps1 and
# post-renew.ps1 where they say so. What both layers do: read the certificates (LocalMachine My and
# WebHosting) and the IIS https bindings with the http.sys entry that serves each, find the
# certificate each binding should use, test its private key (the shared key test, as SYSTEM),
# repair the key link with certutil -repairstore when allowed and needed, and check the bindings.
# Bindings are only ever read: a wrong one is reported, never changed.
$CertopsLogCap = 5MB        # a day's log file stops growing here
$CertopsLogDays = 14        # log files older than this are deleted
$CertopsServerCerts = @{}   # thumbprint -> Test-CertopsServerCert verdict, built once per run
function Format-CertopsTime([DateTime]$Time) {
    return $Time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [Globalization.CultureInfo]::InvariantCulture)
}
function New-CertopsRun([string]$Kind, [bool]$Repair) {
    # one run's state: what it checked, repaired and still found wrong, and its log file
    $started = [DateTime]::UtcNow
    $dir = Join-Path $env:ProgramData 'certops\logs'
    $day = $started.ToString('yyyyMMdd', [Globalization.CultureInfo]::InvariantCulture)
    $run = @{ kind = $Kind; repair = $Repair; started = $started; log = (Join-Path $dir "$Kind-$day.log")
        checked = (New-Object 'Collections.Generic.List[object]'); repaired = (New-Object 'Collections.Generic.List[object]')
        errors = (New-Object 'Collections.Generic.List[string]'); notes = (New-Object 'Collections.Generic.List[string]')
        tested = @{} }
    try {
        if (-not (Test-Path -LiteralPath $dir)) { $null = New-Item -ItemType Directory -Path $dir -Force }
        Get-ChildItem -LiteralPath $dir -File | Where-Object {
            $_.Name -match '^(self-heal|post-renew)-[0-9]{8}\.log$' -and $_.LastWriteTimeUtc -lt $started.AddDays(-$CertopsLogDays)
        } | Remove-Item -Force
    } catch { Write-Host "certops: the log folder $dir could not be tidied: $($_.Exception.Message)" }
    return $run
}
function Write-CertopsLog($Run, [string]$Text) {
    # to the console (win-acme keeps a Script step's output in its log) and to the day's file
    $line = (Format-CertopsTime ([DateTime]::UtcNow)) + ' ' + $Text
    Write-Host $line
    try {
        $size = 0
        if (Test-Path -LiteralPath $Run.log) { $size = (Get-Item -LiteralPath $Run.log).Length }
        if ($size -ge $CertopsLogCap) { return }
        if ($size + $line.Length -ge $CertopsLogCap) { $line = "$line`r`n(the log of this day is full; later lines are dropped)" }
        [IO.File]::AppendAllText($Run.log, "$line`r`n", (New-Object Text.UTF8Encoding $false))
    } catch { Write-Host "certops: the log $($Run.log) could not be written: $($_.Exception.Message)" }
}
function Add-CertopsError($Run, [string]$Text) {
    # a problem still there after the run, as one sentence (the report takes 2,000 characters)
    if ($Text.Length -gt 2000) { $Text = $Text.Substring(0, 1997) + '...' }
    $Run.errors.Add($Text)
    Write-CertopsLog $Run "problem: $Text"
}
function ConvertTo-CertopsReport($Run) {
    # the JSON document of docs/report-api.md; Send-CertopsReport fills in host
    $errors = $Run.errors.ToArray()
    if ($errors.Count -gt 100) { $errors = $errors[0..98] + @("and $($errors.Count - 99) more problems: see $($Run.log)") }
    $checked = $Run.checked.ToArray()
    if ($checked.Count -gt 500) { $checked = $checked[0..499] }
    $repaired = $Run.repaired.ToArray()
    if ($repaired.Count -gt 100) { $repaired = $repaired[0..99] }
    return [ordered]@{ host = $null; kind = $Run.kind; started = (Format-CertopsTime $Run.started)
        finished = (Format-CertopsTime ([DateTime]::UtcNow)); ok = ($Run.errors.Count -eq 0); repair = $Run.repair
        checked = @($checked); repaired = @($repaired); errors = @($errors); version = 1 }
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
    # the CN, and the dNSName entries ([2] IA5String) of the SAN extension (2.5.29.17) read from its
    # DER: DnsNameList finds SANs only on English Windows. Lower-case IDNA A-labels.
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
    $tp = $Cert.Thumbprint
    if ($CertopsServerCerts.ContainsKey($tp)) { return $CertopsServerCerts[$tp] }
    $verdict = $true
    if ($Cert.Issuer -match '\(STAGING\)|\bFake LE\b') { $verdict = $false }
    foreach ($ext in @($Cert.Extensions)) {
        if ($ext.Oid.Value -ne '2.5.29.37') { continue }
        $eku = New-Object Security.Cryptography.X509Certificates.X509EnhancedKeyUsageExtension -ArgumentList $ext, $ext.Critical
        $oids = @($eku.EnhancedKeyUsages | ForEach-Object { $_.Value })
        if (-not (($oids -contains '1.3.6.1.5.5.7.3.1') -or ($oids -contains '2.5.29.37.0'))) { $verdict = $false }
    }
    if ($verdict) {
        $chain = New-Object Security.Cryptography.X509Certificates.X509Chain -ArgumentList $true
        try {
            $chain.ChainPolicy.RevocationMode = [Security.Cryptography.X509Certificates.X509RevocationMode]::NoCheck
            $chain.ChainPolicy.UrlRetrievalTimeout = New-Object TimeSpan -ArgumentList 0, 0, 2
            $null = $chain.Build($Cert)
            $untrusted = @($chain.ChainStatus | Where-Object { @('UntrustedRoot', 'PartialChain', 'ExplicitDistrust') -contains [string]$_.Status })
            $verdict = ($untrusted.Count -eq 0)
        } finally { $chain.Reset() }
    }
    $CertopsServerCerts[$tp] = $verdict
    return $verdict
}
function Get-CertopsCertificates($Run) {
    # every certificate of LocalMachine My and WebHosting, with its names
    $certs = New-Object 'Collections.Generic.List[object]'
    foreach ($store in @('My', 'WebHosting')) {
        if (-not (Test-Path -LiteralPath "Cert:\LocalMachine\$store")) { continue }
        foreach ($c in @(Get-ChildItem -LiteralPath "Cert:\LocalMachine\$store")) {
            try { $certs.Add([pscustomobject]@{ Store = $store; Cert = $c; Names = [string[]](Get-CertopsDnsNames $c) }) }
            catch { Add-CertopsError $Run "the names of certificate $($c.Thumbprint) in $store could not be read: $($_.Exception.Message)" }
        }
    }
    return , $certs
}
function Get-CertopsStoreName([string]$Name) {
    # netsh prints MY, My or (null) (http.sys then uses My); IIS names My or WebHosting
    if (-not $Name -or $Name -eq '(null)' -or $Name -eq 'My') { return 'My' }
    if ($Name -eq 'WebHosting') { return 'WebHosting' }
    return $Name
}
function Get-CertopsHttpSys($Run) {
    # http.sys's certificate bindings from netsh http show sslcert, keyed by lower-case endpoint
    # (IP:port or hostname:port). Labels are localised, so each block is read by position: the
    # endpoint, the certificate hash, the application id, the store name.
    $ErrorActionPreference = 'Continue'  # 5.1 turns native stderr into error records; judged by exit code
    $text = (& netsh.exe http show sslcert 2>&1 | Out-String)
    $code = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'
    $entries = @{}
    if ($code -ne 0) {
        Add-CertopsError $Run "netsh http show sslcert failed (exit $code): $($text.Trim())"
        return $entries
    }
    $idn = New-Object Globalization.IdnMapping
    foreach ($block in ($text -split '\r?\n\s*\r?\n')) {
        $values = New-Object 'Collections.Generic.List[string]'
        foreach ($line in ($block -split '\r?\n')) {
            if ($line -match '^\s*\S.*?\s*:\s+(\S.*?)\s*$') { $values.Add($Matches[1]) }
        }
        if ($values.Count -lt 2 -or $values[1] -notmatch '^[0-9A-Fa-f]{40}$') { continue }  # a CCS entry has no hash
        $endpoint = $values[0].ToLowerInvariant()
        if ($endpoint -match '^([^\[\]:]*[^\[\]:0-9.][^\[\]:]*):([0-9]+)$') {
            try { $endpoint = $idn.GetAscii($Matches[1]).ToLowerInvariant() + ':' + $Matches[2] } catch { }
        }
        $store = $null
        if ($values.Count -gt 3) { $store = $values[3] }
        $entries[$endpoint] = @{ thumbprint = $values[1].ToUpperInvariant(); store = (Get-CertopsStoreName $store) }
    }
    return $entries
}
function Get-CertopsBindings($Run) {
    # every IIS https binding but Central Certificate Store ones, with the http.sys entry that
    # serves it: SNI by hostname:port, otherwise by IP:port ("*" is 0.0.0.0, else [::]). What it is
    # bound to is http.sys's hash when there is an entry (that is what schannel serves), else IIS's.
    $found = New-Object 'Collections.Generic.List[object]'
    $httpSys = Get-CertopsHttpSys $Run
    $sites = @()
    try {
        $mwa = "$env:windir\System32\inetsrv\Microsoft.Web.Administration.dll"
        if (Test-Path -LiteralPath $mwa) { Add-Type -Path $mwa }  # the partial-name load fails on some hosts
        else { $null = [Reflection.Assembly]::Load('Microsoft.Web.Administration, Version=7.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35') }
        $sites = @((New-Object Microsoft.Web.Administration.ServerManager).Sites)
    } catch {
        Add-CertopsError $Run "IIS configuration could not be read: $($_.Exception.Message)"
        return , $found
    }
    $idn = New-Object Globalization.IdnMapping
    foreach ($site in $sites) {
        foreach ($b in @($site.Bindings)) {
            try {
                if ($b.Protocol -ne 'https' -or ([int]$b.SslFlags -band 2)) { continue }
                # "IP:port:host"; an IPv6 address is bracketed and holds colons itself
                if ($b.BindingInformation -notmatch '^(\[[^\]]*\]|[^:]*):([0-9]+):(.*)$') { continue }
                $ip = $Matches[1]
                $port = $Matches[2]
                $name = $Matches[3]
                if ($name) { $name = $idn.GetAscii($name).ToLowerInvariant() }
                if ([int]$b.SslFlags -band 1) { $keys = @("${name}:$port") }
                elseif ($ip -eq '*' -or $ip -eq '') { $keys = @("0.0.0.0:$port", "[::]:$port") }
                else { $keys = @("$($ip.ToLowerInvariant()):$port") }
                $entry = $null
                foreach ($k in $keys) { if ($null -eq $entry -and $httpSys.ContainsKey($k)) { $entry = $httpSys[$k] } }
                $iisHash = ''
                if ($null -ne $b.CertificateHash) { $iisHash = [BitConverter]::ToString($b.CertificateHash) -replace '-', '' }
                $label = if ($name) { "${name}:$port" } else { "${ip}:$port" }
                if ($null -ne $entry) { $thumbprint = $entry.thumbprint; $store = $entry.store }
                else { $thumbprint = $iisHash; $store = Get-CertopsStoreName ([string]$b.CertificateStoreName) }
                $found.Add([pscustomobject]@{ label = $label; site = [string]$site.Name; name = $name
                        thumbprint = $thumbprint; store = $store; http_sys = ($null -ne $entry) })
            } catch { Add-CertopsError $Run "binding $($b.BindingInformation) of IIS site $($site.Name) could not be read: $($_.Exception.Message)" }
        }
    }
    return , $found
}
function Test-CertopsCoversAll([string[]]$Names, [string[]]$Wanted) {
    foreach ($w in $Wanted) { if (-not (Test-CertopsCovers $Names $w)) { return $false } }
    return $true
}
function Find-CertopsNewest($Certs, $Binding) {
    # The certificate a binding should use: the newest (latest NotBefore) that covers its host
    # name, or for a binding without one (an IP binding) every name of the certificate bound there;
    # a staging or non-serverAuth certificate only when it is the one bound. When the thumbprint is
    # in My and WebHosting, the copy in the store the binding names (each copy has its own key link).
    $bound = $null
    if ($Binding.thumbprint) {
        $bound = $Certs | Where-Object { $_.Cert.Thumbprint -eq $Binding.thumbprint } |
            Sort-Object { $_.Store -ne $Binding.store } | Select-Object -First 1
    }
    $names = @()
    if ($Binding.name) { $names = @($Binding.name) } elseif ($null -ne $bound) { $names = @($bound.Names) }
    if ($names.Count -eq 0) { return $bound }
    $newest = $Certs | Where-Object {
        (Test-CertopsCoversAll $_.Names $names) -and ($_.Cert.Thumbprint -eq $Binding.thumbprint -or (Test-CertopsServerCert $_.Cert))
    } | Sort-Object { $_.Cert.NotBefore } -Descending | Select-Object -First 1
    if ($null -eq $newest) { return $null }
    $copy = $Certs | Where-Object { $_.Cert.Thumbprint -eq $newest.Cert.Thumbprint -and $_.Store -eq $Binding.store } | Select-Object -First 1
    if ($null -ne $copy) { return $copy }
    return $newest
}
function Get-CertopsTargets($Certs, $Bindings) {
    # the certificates the bindings should use, each with those bindings; and the bindings no
    # certificate is found for, each with why
    $targets = New-Object 'Collections.Generic.List[object]'
    $missing = New-Object 'Collections.Generic.List[string]'
    $byKey = @{}
    foreach ($b in $Bindings) {
        $entry = Find-CertopsNewest $Certs $b
        if ($null -eq $entry) {
            if ($b.name) { $why = "has no certificate in My or WebHosting that covers $($b.name)" }
            elseif ($b.thumbprint) { $why = "is bound to $($b.thumbprint), which is in neither My nor WebHosting" }
            else { $why = 'has no certificate' }
            $missing.Add("$($b.label) (IIS site $($b.site)) $why")
            continue
        }
        $key = $entry.Store + '|' + $entry.Cert.Thumbprint
        if (-not $byKey.ContainsKey($key)) {
            $byKey[$key] = @{ entry = $entry; bindings = (New-Object 'Collections.Generic.List[object]') }
            $targets.Add($byKey[$key])
        }
        $byKey[$key].bindings.Add($b)
    }
    return @{ targets = $targets; missing = $missing }
}
function Test-CertopsKey($Facts) {
    # the one judgement made on the host: the key signs, its signature verifies with the
    # certificate's public key, and it is a machine key (schannel runs as SYSTEM)
    return ($Facts.signed -and $Facts.verified -ne $false -and $Facts.is_machine_key -ne $false)
}
function Test-CertopsCertificateKey($Run, $Entry, [bool]$Repair) {
    # The shared key test; certutil -repairstore (the key link only) when it fails and the run may
    # repair. A healthy key is never touched, so a second run changes nothing.
    $tp = $Entry.Cert.Thumbprint
    $store = $Entry.Store
    $facts = Get-CertopsKeyFacts $Entry.Cert
    if (-not (Test-CertopsKey $facts)) {
        $why = if ($facts.message) { "$($facts.hresult) $($facts.message)".Trim() } else { 'no usable private key' }
        if ($Repair) {
            Write-CertopsLog $Run "the private key of $tp in $store failed the key test ($why); running certutil -silent -repairstore $store $tp"
            $ErrorActionPreference = 'Continue'  # 5.1 would throw on certutil's stderr under 'Stop'
            $out = (& certutil.exe -silent -repairstore $store $tp 2>&1 | Out-String)
            $code = $LASTEXITCODE
            $ErrorActionPreference = 'Stop'
            Write-CertopsLog $Run "certutil exit $code`r`n$($out.Trim())"
            $facts = Get-CertopsKeyFacts (Get-Item -LiteralPath "Cert:\LocalMachine\$store\$tp")
            if (Test-CertopsKey $facts) {
                $Run.repaired.Add(@{ thumbprint = $tp; store = $store; what = 'key_link'; detail = "certutil -silent -repairstore $store $tp" })
                $Run.notes.Add("repaired the key link of $tp in $store")
                Write-CertopsLog $Run "repaired the key link of $tp in $store"
            } else {
                $last = @($out -split '\r?\n' | Where-Object { $_.Trim() }) | Select-Object -Last 1
                Add-CertopsError $Run "the private key of $tp in $store is still unusable after certutil -repairstore (exit $code): $last"
            }
        } else {
            Add-CertopsError $Run "the private key of $tp in $store is unusable ($why); not repaired: this run only reports (-Repair repairs)"
        }
    }
    $Run.tested[$tp] = @{ store = $store; thumbprint = $tp; has_private_key = $Entry.Cert.HasPrivateKey; key = $facts }
    return (Test-CertopsKey $facts)
}
function Test-CertopsCertificate($Run, $Entry, $Bindings, [bool]$Repair) {
    # one certificate: its key, then each binding that should use it; adds its "checked" entry
    $tp = $Entry.Cert.Thumbprint
    $keyOk = Test-CertopsCertificateKey $Run $Entry $Repair
    $results = New-Object 'Collections.Generic.List[object]'
    foreach ($b in $Bindings) {
        $problem = $null
        if (-not $b.http_sys) { $problem = 'has no certificate binding in http.sys' }
        elseif ($b.thumbprint -ne $tp) { $problem = "is bound to $($b.thumbprint), not the newest certificate $tp" }
        elseif ($b.store -ne $Entry.Store) { $problem = "is bound to $tp in store $($b.store), which does not hold it (it is in $($Entry.Store))" }
        if ($problem) { Add-CertopsError $Run "$($b.label) (IIS site $($b.site)) $problem" }
        $bound = if ($b.thumbprint) { $b.thumbprint } else { $null }
        $results.Add(@{ binding = $b.label; thumbprint = $bound; ok = ($null -eq $problem) })
    }
    $Run.checked.Add(@{ thumbprint = $tp; store = $Entry.Store; names = [string[]]@($Entry.Names)
            not_after = (Format-CertopsTime $Entry.Cert.NotAfter); key_ok = $keyOk; bindings = $results.ToArray() })
    Write-CertopsLog $Run ("checked $tp in $($Entry.Store) (" + (@($Entry.Names) -join ', ') + "): key " +
        $(if ($keyOk) { 'ok' } else { 'unusable' }) + ", $($results.Count) binding(s)")
    return $keyOk
}
# <<< certops layer common
# >>> certops report: host_actions/ps/include/report.ps1, put into the layer scripts (self-heal.ps1,
# post-renew.ps1) where they say so. Signs and posts one run's report to the bot, as
# docs/report-api.md describes: POST /api/report, HMAC-SHA256 over "v1:<timestamp>:<body>".
function Get-CertopsReportSignature([string]$Secret, [string]$Timestamp, [byte[]]$Body) {
    $hmac = New-Object System.Security.Cryptography.HMACSHA256 (, [Text.Encoding]::UTF8.GetBytes($Secret))
    $prefix = [Text.Encoding]::UTF8.GetBytes("v1:${Timestamp}:")
    $hash = $hmac.ComputeHash([byte[]]($prefix + $Body))
    'v1=' + (($hash | ForEach-Object { $_.ToString('x2') }) -join '')
}
function Send-CertopsReport($Report) {
    # Reads where to report and as which [[hosts]] name (%ProgramData%\certops\report.json) and the
    # secret (report.key), fills in the report's host, and posts it. Returns @{ sent; text }, and
    # never throws: a report that cannot be sent must not undo what the run did.
    $dir = Join-Path $env:ProgramData 'certops'
    $configFile = Join-Path $dir 'report.json'
    $keyFile = Join-Path $dir 'report.key'
    try {
        if (-not (Test-Path -LiteralPath $configFile -PathType Leaf)) { return @{ sent = $false; text = "did not report: $configFile is missing" } }
        if (-not (Test-Path -LiteralPath $keyFile -PathType Leaf)) { return @{ sent = $false; text = "did not report: $keyFile is missing" } }
        $config = ConvertFrom-Json -InputObject ([IO.File]::ReadAllText($configFile))
        $url = [string]$config.url
        $hostName = [string]$config.host
        $secret = ([IO.File]::ReadAllText($keyFile)).Trim()
        if ($url -notmatch '^https?://' -or -not $hostName) {
            return @{ sent = $false; text = "did not report: $configFile needs a url (https://...) and a host" }
        }
        if (-not $secret) { return @{ sent = $false; text = "did not report: $keyFile is empty" } }
        $Report['host'] = $hostName
        # 5.1: without this, an array wrapped in a PSObject is written as {"value":[...],"Count":n}
        Remove-TypeData -TypeName System.Array -ErrorAction SilentlyContinue
        $json = ConvertTo-Json -InputObject $Report -Depth 8 -Compress
        # encoded once: these very bytes are signed and sent
        $body = (New-Object Text.UTF8Encoding $false).GetBytes($json)
        $timestamp = [string]([DateTimeOffset]::UtcNow.ToUnixTimeSeconds())
        $signature = Get-CertopsReportSignature -Secret $secret -Timestamp $timestamp -Body $body
        [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
        $headers = @{ 'X-Certops-Host' = $hostName; 'X-Certops-Timestamp' = $timestamp; 'X-Certops-Signature' = $signature }
        $response = Invoke-WebRequest -Uri $url -UseBasicParsing -Method Post -ContentType 'application/json; charset=utf-8' -Headers $headers -Body $body -TimeoutSec 30 -MaximumRedirection 0
        if ([int]$response.StatusCode -ne 200) {
            return @{ sent = $false; text = "did not report: $url answered HTTP $([int]$response.StatusCode)" }
        }
        return @{ sent = $true; text = "reported to $url" }
    } catch {
        $why = $_.Exception.Message
        $answer = $_.Exception.Response  # an HTTP error: the bot says why in a short JSON body
        if ($null -ne $answer) {
            try {
                $text = [IO.StreamReader]::new($answer.GetResponseStream()).ReadToEnd()
                if ($text.Length -gt 300) { $text = $text.Substring(0, 300) }
                $why = "HTTP $([int]$answer.StatusCode) $text"
            } catch { $why = "HTTP $([int]$answer.StatusCode)" }
        }
        return @{ sent = $false; text = "did not report: $why" }
    }
}
# <<< certops report

$run = New-CertopsRun -Kind 'post-renew' -Repair $true
Write-CertopsLog $run "post-renew started for $Thumbprint as $([Security.Principal.WindowsIdentity]::GetCurrent().Name)"
$code = 0
try {
    $certs = Get-CertopsCertificates $run
    $copies = @($certs | Where-Object { $_.Cert.Thumbprint -eq $Thumbprint } | Sort-Object { $_.Store -ne 'WebHosting' })
    if ($copies.Count -eq 0) {
        Add-CertopsError $run "certificate $Thumbprint is in neither LocalMachine\WebHosting nor LocalMachine\My"
        $code = 3
    } else {
        $bindings = Get-CertopsBindings $run
        # only the bindings this certificate is the newest one for; other sites are not its business
        $mine = @((Get-CertopsTargets $certs $bindings).targets | Where-Object { $_.entry.Cert.Thumbprint -eq $Thumbprint })
        if ($mine.Count -eq 0) {
            Add-CertopsError $run ("no IIS https binding uses the names of $Thumbprint (" + (@($copies[0].Names) -join ', ') +
                "): win-acme's IIS step bound nothing to it")
            $mine = @(@{ entry = $copies[0]; bindings = @() })
        }
        foreach ($target in $mine) {
            if (-not (Test-CertopsCertificate $run $target.entry $target.bindings -Repair $true)) { $code = 1 }
        }
    }
} catch {
    Add-CertopsError $run "the check stopped: $($_.Exception.Message)"
}
if ($code -eq 0 -and $run.errors.Count -gt 0) { $code = 2 }
$sent = Send-CertopsReport (ConvertTo-CertopsReport $run)
Write-CertopsLog $run $sent.text
Write-CertopsLog $run "post-renew finished for ${Thumbprint}: exit $code"
exit $code
