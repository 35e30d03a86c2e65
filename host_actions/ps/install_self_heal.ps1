# certops-script: install_self_heal
# Installs Layer 2, each piece only when certops asks for it (it compared a layer_state read with
# what it wants): %ProgramData%\certops\self-heal.ps1 (ScriptText), SYSTEM and Administrators
# only, and the task \certops\certops self-heal (Arguments): powershell.exe running that file as
# SYSTEM with highest privileges every IntervalMinutes minutes, a run skipped while the last one
# still runs, stopped after 10 minutes. Register-ScheduledTask -Force replaces the task, so there
# is one however often this runs. The old \certops\certops hourly check task, which it replaces,
# and its certops-hourly-check.ps1 are removed when they are there. Says what it did; certops
# reads the result back and judges it.
param(
    [string]$ScriptText = '',
    [ValidatePattern('^-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "%ProgramData%\\certops\\self-heal\.ps1"( -Repair)?$')][string]$Arguments = '',
    [ValidatePattern('^[1-9][0-9]{0,4}$')][string]$IntervalMinutes = '60'
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
# certops: include locked_files.ps1
$dir = Join-Path $env:ProgramData 'certops'
$created = Initialize-CertopsFolder $dir
$done = @{ folder_created = [bool]$created; script_written = $false; task_registered = $false
    old_task_removed = $false; old_script_removed = $false }
if ($ScriptText) {
    Write-CertopsLockedFile (Join-Path $dir 'self-heal.ps1') $ScriptText
    $done.script_written = $true
}
if ($Arguments) {
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument $Arguments
    # the first run a minute from now, then every IntervalMinutes for ten years (a duration every
    # Windows release takes; [TimeSpan]::MaxValue is refused by some)
    $trigger = New-ScheduledTaskTrigger -Once -At ((Get-Date).AddMinutes(1)) -RepetitionInterval (New-TimeSpan -Minutes ([int]$IntervalMinutes)) -RepetitionDuration (New-TimeSpan -Days 3650)
    $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
    $taskSettings = New-ScheduledTaskSettingsSet -MultipleInstances IgnoreNew -ExecutionTimeLimit (New-TimeSpan -Minutes 10) -StartWhenAvailable -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
    $null = Register-ScheduledTask -TaskPath '\certops\' -TaskName 'certops self-heal' -Action $action -Trigger $trigger -Principal $principal -Settings $taskSettings -Description 'certops Layer 2: checks the certificates and key links the https bindings use (with -Repair, repairs broken key links) and reports to certops' -Force
    $done.task_registered = $true
}
$old = Get-ScheduledTask -TaskPath '\certops\' -TaskName 'certops hourly check' -ErrorAction SilentlyContinue
if ($null -ne $old) {
    Unregister-ScheduledTask -TaskPath '\certops\' -TaskName 'certops hourly check' -Confirm:$false
    $done.old_task_removed = $true
}
# and the script it ran, which nothing else runs
$oldScript = Join-Path $dir 'certops-hourly-check.ps1'
if (Test-Path -LiteralPath $oldScript -PathType Leaf) {
    Remove-Item -LiteralPath $oldScript -Force
    $done.old_script_removed = $true
}
$done
