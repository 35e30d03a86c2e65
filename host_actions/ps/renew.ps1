# certops-script: renew
# Starts one win-acme run as a one-shot scheduled task running as SYSTEM, as win-acme's own task
# does ('start'), or looks at one started earlier ('follow'), and returns the task's state and
# what wacs logged since the run began. It never waits for wacs: a WinRM command cut at its
# deadline could stop a renewal between "stored" and "bound"; certops polls in later commands.
param(
    [ValidateSet('start', 'follow')][string]$Mode = 'start',
    [Parameter(Mandatory = $true)][ValidatePattern('^[A-Za-z]:\\[^"''`$;|&<>*?]+\\wacs\.exe$')][string]$WacsPath,
    [Parameter(Mandatory = $true)][ValidatePattern('^certops renew ([A-Za-z0-9_-]{1,64}|\(all due\))$')][string]$TaskName,
    [Parameter(Mandatory = $true)][ValidatePattern('^[A-Za-z]:\\[^"''`$;|&<>*?]+$')][string]$LogFolder,
    [ValidatePattern('^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$')][string]$BaseUri = 'https://acme-v02.api.letsencrypt.org/',
    [ValidatePattern('^([A-Za-z0-9_-]{1,64})?$')][string]$RenewalId = '',
    [bool]$Force = $false
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$taskPath = '\certops\'
$startedAt = $null

if ($Mode -eq 'start') {
    # the same arguments win-acme's own task passes, narrowed to one renewal; --verbose makes the
    # day's log file carry the detail certops reads back
    $arguments = "--renew --baseuri `"$BaseUri`""
    if ($RenewalId) { $arguments += " --id $RenewalId" }
    if ($Force) { $arguments += ' --force' }
    $arguments += ' --verbose'
    $action = New-ScheduledTaskAction -Execute $WacsPath -Argument $arguments -WorkingDirectory (Split-Path -Parent $WacsPath)
    $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
    $taskSettings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit (New-TimeSpan -Hours 2) -MultipleInstances IgnoreNew -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
    $null = Register-ScheduledTask -TaskPath $taskPath -TaskName $TaskName -Action $action -Principal $principal -Settings $taskSettings -Description 'certops: one win-acme run started from chat; removed once certops has read its result' -Force
    $startedAt = Get-Date
    Start-ScheduledTask -TaskPath $taskPath -TaskName $TaskName
}

$task = Get-ScheduledTask -TaskPath $taskPath -TaskName $TaskName -ErrorAction SilentlyContinue
$doc = @{ task = $taskPath + $TaskName; exists = ($null -ne $task); now = (Get-Date).ToString('o'); started_at = $null; log = @(); log_missing = @(); events = @(); collected = $false }
if ($null -eq $task) { return $doc }
$info = Get-ScheduledTaskInfo -InputObject $task
$doc.state = [string]$task.State
$doc.last_result = [long]$info.LastTaskResult
$doc.arguments = [string]@($task.Actions)[0].Arguments
$doc.last_run = $(if ($info.LastRunTime) { $info.LastRunTime.ToString('o') } else { $null })
if ($null -eq $startedAt) {
    $startedAt = $info.LastRunTime
    # LastRunTime of a task that has not run yet is a 1999 placeholder
    if ($null -eq $startedAt -or $startedAt.Year -lt 2000) { $startedAt = (Get-Date).AddMinutes(-5) }
}
$doc.started_at = $startedAt.ToString('o')

# win-acme's disk log rolls daily (log-yyyyMMdd.txt, invariant digits); a run may cross midnight
$days = @($startedAt.Date)
if ((Get-Date).Date -ne $startedAt.Date) { $days += (Get-Date).Date }
$logs = New-Object 'Collections.Generic.List[object]'
$missing = New-Object 'Collections.Generic.List[string]'
foreach ($day in $days) {
    $file = Join-Path $LogFolder ('log-' + $day.ToString('yyyyMMdd', [Globalization.CultureInfo]::InvariantCulture) + '.txt')
    if (-not (Test-Path -LiteralPath $file -PathType Leaf)) { $missing.Add($file); continue }
    # wacs keeps the file open for writing while it runs: share ReadWrite, or the open fails
    $stream = New-Object IO.FileStream($file, [IO.FileMode]::Open, [IO.FileAccess]::Read, [IO.FileShare]::ReadWrite)
    try {
        if ($stream.Length -gt 262144) { $null = $stream.Seek(-262144, [IO.SeekOrigin]::End) }
        $reader = New-Object IO.StreamReader($stream, (New-Object Text.UTF8Encoding($false)))
        $logs.Add(@{ path = $file; text = $reader.ReadToEnd() })
    } finally {
        $stream.Dispose()
    }
}
$doc.log = @($logs)
$doc.log_missing = @($missing)
# warnings and errors also go to the Application log (source win-acme), wherever the file log is
$doc.events = @(Get-WinEvent -FilterHashtable @{ LogName = 'Application'; ProviderName = 'win-acme'; StartTime = $startedAt } -MaxEvents 100 -ErrorAction SilentlyContinue | ForEach-Object { @{ at = $_.TimeCreated.ToString('o'); level = [int]$_.Level; message = [string]$_.Message } })

# once the run has ended, the one-shot task goes: a later renew starts afresh instead of
# following a finished run (certops judges the result from the facts above, in the same answer)
$running = ($doc.state -eq 'Running') -or ($doc.state -eq 'Queued') -or ($doc.last_result -eq 0x41301) -or ($doc.last_result -eq 0x41303)
if (-not $running) {
    Unregister-ScheduledTask -TaskPath $taskPath -TaskName $TaskName -Confirm:$false
    $doc.collected = $true
}
$doc
