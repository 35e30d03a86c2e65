# Registers the certops Layer 2 check as an hourly task running as SYSTEM (the account
# http.sys uses, so the key test sees the same ACLs schannel does). Run as Administrator.
param(
    [ValidatePattern('^[A-Za-z]:\\[^"''`$;|&<>*?]+\.ps1$')]
    [string]$ScriptPath = "$env:ProgramData\certops\certops-hourly-check.ps1"
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$dir = Split-Path -Parent $ScriptPath
if (-not (Test-Path -LiteralPath $dir)) { $null = New-Item -ItemType Directory -Path $dir }
Copy-Item -LiteralPath (Join-Path $PSScriptRoot 'certops-hourly-check.ps1') -Destination $ScriptPath -Force
$action = New-ScheduledTaskAction -Execute 'powershell.exe' `
    -Argument "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File `"$ScriptPath`""
$trigger = New-ScheduledTaskTrigger -Once -At (Get-Date).Date -RepetitionInterval (New-TimeSpan -Hours 1) `
    -RepetitionDuration (New-TimeSpan -Days 3650)
$principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
$settings = New-ScheduledTaskSettingsSet -StartWhenAvailable -ExecutionTimeLimit (New-TimeSpan -Minutes 10) `
    -MultipleInstances IgnoreNew
$null = Register-ScheduledTask -TaskPath '\certops\' -TaskName 'certops hourly check' -Action $action `
    -Trigger $trigger -Principal $principal -Settings $settings -Force
Write-Output "Registered \certops\certops hourly check running $ScriptPath every hour as SYSTEM."
