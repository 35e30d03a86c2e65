# certops-script: bindings
# http.sys SSL bindings (netsh text; certops parses it by structure, since labels are localised)
# and IIS site bindings read through Microsoft.Web.Administration.
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$netsh = (& netsh.exe http show sslcert | Out-String)
$netshExit = $LASTEXITCODE
$sites = New-Object 'Collections.Generic.List[object]'
$iis = $false
$iisError = $null
try {
    Add-Type -AssemblyName 'Microsoft.Web.Administration'
    $sm = New-Object Microsoft.Web.Administration.ServerManager
    $iis = $true
    foreach ($s in $sm.Sites) {
        $bs = New-Object 'Collections.Generic.List[object]'
        foreach ($b in $s.Bindings) {
            $hash = ''
            if ($b.Protocol -eq 'https' -and $null -ne $b.CertificateHash) {
                $hash = [BitConverter]::ToString($b.CertificateHash) -replace '-', ''
            }
            $bs.Add(@{
                protocol = $b.Protocol
                binding_information = $b.BindingInformation
                ssl_flags = [int]$b.SslFlags
                certificate_hash = $hash
                certificate_store = [string]$b.CertificateStoreName
            })
        }
        $sites.Add(@{ name = $s.Name; id = [long]$s.Id; bindings = @($bs) })
    }
} catch {
    $iis = $false
    $iisError = $_.Exception.Message
}
@{ netsh = $netsh; netsh_exit = $netshExit; iis_available = $iis; iis_error = $iisError; sites = @($sites) }
