# certops-script: bindings
# http.sys SSL bindings (netsh text; certops parses it by structure, since labels are localised)
# and IIS site bindings read through Microsoft.Web.Administration (MWA), loaded by path from
# inetsrv first: the partial-name load fails on some hosts. A site or binding that cannot be
# read is reported next to the others (errors), never instead of them.
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$ErrorActionPreference = 'Continue'  # 5.1 turns native stderr into error records; judged by exit code
$netsh = (& netsh.exe http show sslcert 2>&1 | Out-String)
$netshExit = $LASTEXITCODE
$ErrorActionPreference = 'Stop'
$sites = New-Object 'Collections.Generic.List[object]'
$errors = New-Object 'Collections.Generic.List[object]'
$iis = $false
$iisError = $null
$loadedBy = $null
$loadErrors = New-Object 'Collections.Generic.List[string]'
$mwa = "$env:windir\System32\inetsrv\Microsoft.Web.Administration.dll"
try { Add-Type -Path $mwa; $loadedBy = 'path' } catch { $loadErrors.Add($_.Exception.Message) }
if (-not $loadedBy) {
    try {
        $null = [Reflection.Assembly]::Load('Microsoft.Web.Administration, Version=7.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35')
        $loadedBy = 'full_name'
    } catch { $loadErrors.Add($_.Exception.Message) }
}
try {
    if (-not $loadedBy) { throw ('Microsoft.Web.Administration could not be loaded: ' + ($loadErrors -join ' / ')) }
    $sm = New-Object Microsoft.Web.Administration.ServerManager
    $all = @($sm.Sites)
    $iis = $true
    foreach ($s in $all) {
        $siteName = $null
        try {
            $siteName = $s.Name
            $bs = New-Object 'Collections.Generic.List[object]'
            foreach ($b in @($s.Bindings)) {
                $doc = @{ protocol = $b.Protocol; binding_information = $b.BindingInformation; ssl_flags = 0
                    certificate_hash = ''; certificate_store = ''; error = $null }
                try {
                    $doc.ssl_flags = [int]$b.SslFlags
                    if ($b.Protocol -eq 'https') {
                        $raw = $b.CertificateHash  # its getter throws on some bindings (win-acme wraps it too)
                        if ($null -ne $raw) { $doc.certificate_hash = [BitConverter]::ToString($raw) -replace '-', '' }
                        $doc.certificate_store = [string]$b.CertificateStoreName
                    }
                } catch {
                    $doc.error = $_.Exception.Message
                    $errors.Add(@{ site = $siteName; binding = [string]$doc.binding_information; error = $doc.error })
                }
                $bs.Add($doc)
            }
            $sites.Add(@{ name = $siteName; id = [long]$s.Id; bindings = @($bs) })
        } catch {
            $errors.Add(@{ site = $siteName; binding = $null; error = $_.Exception.Message })
        }
    }
} catch {
    $iis = $false
    $iisError = $_.Exception.Message
}
@{ netsh = $netsh; netsh_exit = $netshExit; iis_available = $iis; iis_error = $iisError; mwa_loaded_by = $loadedBy
    errors = @($errors); sites = @($sites) }
