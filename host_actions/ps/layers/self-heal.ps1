# certops Layer 2: self-heal.ps1, run every hour as SYSTEM by the task \certops\certops self-heal
# (register-self-heal.ps1, or certops host install-self-heal HOST). Idempotent.
# For every IIS https binding (with a host name, and IP bindings), with the http.sys entry that
# serves it: find the newest certificate for its names in LocalMachine My and WebHosting, test
# that certificate's private key for real (open it, sign, verify with the certificate's public
# key; RSA or ECDSA), and check that the binding uses it.
#   self-heal.ps1           reports only
#   self-heal.ps1 -Repair   also runs certutil -silent -repairstore when a key fails the test (the
#                           key link only: bindings are never changed, a wrong one is reported)
# Every run: logs to %ProgramData%\certops\logs\self-heal-YYYYMMDD.log (UTC days, 14 kept, 5 MB a
# day), writes its key facts (tested as SYSTEM, the account schannel uses the key as) to
# %ProgramData%\certops\key-verdicts.json where certops's inventory reads them, writes one
# Application event (source certops, ID 1 healthy, ID 2 problems), and reports to the bot
# (kind self-heal, docs/report-api.md) when %ProgramData%\certops\report.json and report.key
# exist. Exits 1 while a problem remains, so the task's Last Run Result shows it too.
# Generated file: edit host_actions/ps/layers/self-heal.ps1 and the includes it names, then run
# python -m host_actions.layers --write deploy/windows
param([switch]$Repair)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'

# certops: include key_test.ps1
# certops: include layer_common.ps1
# certops: include report.ps1
function Save-CertopsKeyVerdicts($Run) {
    # the file certops's inventory reads (host_actions/parsers.py parse_layer2): keep its shape
    try {
        $state = @{ at = [DateTime]::UtcNow.ToString('o'); identity = [Security.Principal.WindowsIdentity]::GetCurrent().Name
            certs = @($Run.tested.Values); problems = @($Run.errors); notes = @($Run.notes) }
        $dir = Join-Path $env:ProgramData 'certops'
        if (-not (Test-Path -LiteralPath $dir)) { $null = New-Item -ItemType Directory -Path $dir }
        [IO.File]::WriteAllText((Join-Path $dir 'key-verdicts.json'), (ConvertTo-Json -InputObject $state -Depth 8 -Compress))
    } catch { Add-CertopsError $Run "the key verdicts could not be saved: $($_.Exception.Message)" }
}
function Write-CertopsEvent($Run, [string]$Reported) {
    try {
        if (-not [Diagnostics.EventLog]::SourceExists('certops')) { New-EventLog -LogName Application -Source 'certops' }
        $lines = @($Run.notes) + @($Run.errors)
        if ($lines.Count -eq 0) { $lines = @('every https binding uses the newest certificate for its names, and its key works') }
        $text = ((@($lines) + @($Reported)) -join "`r`n")
        if ($text.Length -gt 30000) { $text = $text.Substring(0, 30000) }
        if ($Run.errors.Count -gt 0) { Write-EventLog -LogName Application -Source 'certops' -EventId 2 -EntryType Error -Message $text }
        else { Write-EventLog -LogName Application -Source 'certops' -EventId 1 -EntryType Information -Message $text }
    } catch { Write-CertopsLog $Run "the Application event could not be written: $($_.Exception.Message)" }
}

$run = New-CertopsRun -Kind 'self-heal' -Repair $Repair.IsPresent
$mode = if ($Repair) { 'report and repair key links' } else { 'report only' }
Write-CertopsLog $run "self-heal started as $([Security.Principal.WindowsIdentity]::GetCurrent().Name): $mode"
try {
    $certs = Get-CertopsCertificates $run
    $bindings = Get-CertopsBindings $run
    $found = Get-CertopsTargets $certs $bindings
    foreach ($why in $found.missing) { Add-CertopsError $run $why }
    foreach ($target in $found.targets) {
        $null = Test-CertopsCertificate $run $target.entry $target.bindings -Repair $Repair.IsPresent
    }
} catch {
    Add-CertopsError $run "the check stopped: $($_.Exception.Message)"
}
Save-CertopsKeyVerdicts $run
$sent = Send-CertopsReport (ConvertTo-CertopsReport $run)
Write-CertopsLog $run $sent.text
Write-CertopsEvent $run $sent.text
Write-CertopsLog $run "self-heal finished: $($run.checked.Count) certificate(s) checked, $($run.repaired.Count) repaired, $($run.errors.Count) problem(s)"
if ($run.errors.Count -gt 0) { exit 1 }
exit 0
