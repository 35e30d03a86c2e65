# certops Layer 2: installs self-heal.ps1 and registers the task \certops\certops self-heal, every
# -IntervalMinutes (default 60) as SYSTEM (the account schannel uses the keys as), highest
# privileges, at most 10 minutes a run, a new run ignored while one is running. Run it as
# Administrator from the folder that holds self-heal.ps1 (a copy of deploy/windows):
#   .\register-self-heal.ps1 -ReportUrl https://certops.example.com/api/report -HostName iis01 -PromptForReportKey
#   .\register-self-heal.ps1 -Repair          # also repair broken key links (certutil -repairstore)
# Registering again replaces the task (one task, the last settings). It also removes the task it
# replaces, \certops\certops hourly check (certops-hourly-check.ps1), when that is still there.
# Writes %ProgramData%\certops\ (SYSTEM and Administrators only, inheritance off): self-heal.ps1,
# report.json from -ReportUrl and -HostName, report.key when -PromptForReportKey asks for it.
# Without report.json and report.key the task still checks and logs, and says it did not report.
param(
    [ValidateRange(5, 1440)][int]$IntervalMinutes = 60,
    [switch]$Repair,
    [ValidatePattern('^https?://[A-Za-z0-9._~:/?#\[\]@!()*+,=%-]+$')][string]$ReportUrl,
    [ValidatePattern('^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$')][string]$HostName,
    [switch]$PromptForReportKey,
    [switch]$NoStart
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$taskPath = '\certops\'
$taskName = 'certops self-heal'
$oldTaskName = 'certops hourly check'
$utf8 = New-Object Text.UTF8Encoding($false)

$me = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $me.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) { throw 'run this as Administrator (an elevated PowerShell)' }
if ([bool]$ReportUrl -ne [bool]$HostName) { throw '-ReportUrl and -HostName go together: where to report, and this host''s [[hosts]] name' }
$source = Join-Path $PSScriptRoot 'self-heal.ps1'
if (-not (Test-Path -LiteralPath $source -PathType Leaf)) { throw "self-heal.ps1 is not next to this script ($source)" }

function New-CertopsAcl([bool]$Folder) {
    # SYSTEM and Administrators full control, nothing inherited from above
    if ($Folder) { $acl = New-Object Security.AccessControl.DirectorySecurity } else { $acl = New-Object Security.AccessControl.FileSecurity }
    $acl.SetAccessRuleProtection($true, $false)
    foreach ($sid in @('S-1-5-18', 'S-1-5-32-544')) {
        $who = New-Object Security.Principal.SecurityIdentifier($sid)
        if ($Folder) { $rule = New-Object Security.AccessControl.FileSystemAccessRule($who, 'FullControl', 'ContainerInherit, ObjectInherit', 'None', 'Allow') }
        else { $rule = New-Object Security.AccessControl.FileSystemAccessRule($who, 'FullControl', 'Allow') }
        $acl.AddAccessRule($rule)
    }
    return $acl
}
function Write-CertopsFile([string]$Path, [byte[]]$Bytes) {
    # the protected ACL first, then the content: never readable by others, not even for a moment
    if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) { [IO.File]::WriteAllBytes($Path, [byte[]]@()) }
    [IO.File]::SetAccessControl($Path, (New-CertopsAcl $false))
    [IO.File]::WriteAllBytes($Path, $Bytes)
}

$dir = Join-Path $env:ProgramData 'certops'
foreach ($d in @($dir, (Join-Path $dir 'logs'))) {
    if (-not (Test-Path -LiteralPath $d)) { $null = New-Item -ItemType Directory -Path $d }
}
[IO.Directory]::SetAccessControl($dir, (New-CertopsAcl $true))

# the bytes, not Copy-Item: no Zone.Identifier stream comes along (a RemoteSigned policy would refuse
# a downloaded script) and the file gets the folder's ACL
$script = Join-Path $dir 'self-heal.ps1'
Write-CertopsFile $script ([IO.File]::ReadAllBytes($source))

if ($ReportUrl) {
    # the text certops install-self-heal writes (Python's json.dumps), so that neither rewrites the other's
    $config = '{"url": "' + $ReportUrl + '", "host": "' + $HostName + '"}'
    Write-CertopsFile (Join-Path $dir 'report.json') ($utf8.GetBytes($config))
}
if ($PromptForReportKey) {
    $secure = Read-Host -AsSecureString "The report secret of $HostName (the bot's [[hosts]] report_secret; openssl rand -hex 32)"
    $bstr = [Runtime.InteropServices.Marshal]::SecureStringToBSTR($secure)
    try { $secret = [Runtime.InteropServices.Marshal]::PtrToStringBSTR($bstr).Trim() }
    finally { [Runtime.InteropServices.Marshal]::ZeroFreeBSTR($bstr) }
    if (-not $secret) { throw 'the report secret is empty; nothing was written to report.key' }
    Write-CertopsFile (Join-Path $dir 'report.key') ($utf8.GetBytes($secret))
    $secret = $null
}
foreach ($needed in @('report.json', 'report.key')) {
    if (-not (Test-Path -LiteralPath (Join-Path $dir $needed) -PathType Leaf)) {
        Write-Warning "$dir\$needed is missing: the task will check and log, but not report to the bot (see docs/windows-host.md)"
    }
}

if (-not [Diagnostics.EventLog]::SourceExists('certops')) { New-EventLog -LogName Application -Source 'certops' }

# the Layer 2 task this one replaces
$old = Get-ScheduledTask -TaskPath $taskPath -TaskName $oldTaskName -ErrorAction SilentlyContinue
if ($null -ne $old) {
    Unregister-ScheduledTask -TaskPath $taskPath -TaskName $oldTaskName -Confirm:$false
    Write-Output "Removed the old task $taskPath$oldTaskName."
}
$oldScript = Join-Path $dir 'certops-hourly-check.ps1'
if (Test-Path -LiteralPath $oldScript -PathType Leaf) { Remove-Item -LiteralPath $oldScript -Force }

# %ProgramData% as written: Task Scheduler expands it at each run (certops install-self-heal writes the same)
$argument = '-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "%ProgramData%\certops\self-heal.ps1"'
if ($Repair) { $argument += ' -Repair' }
$action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument $argument
$trigger = New-ScheduledTaskTrigger -Once -At (Get-Date).Date -RepetitionInterval (New-TimeSpan -Minutes $IntervalMinutes) `
    -RepetitionDuration (New-TimeSpan -Days 3650)
$principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
$settings = New-ScheduledTaskSettingsSet -StartWhenAvailable -ExecutionTimeLimit (New-TimeSpan -Minutes 10) `
    -MultipleInstances IgnoreNew -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
# -Force replaces a task of the same path and name: registering twice leaves one task
$null = Register-ScheduledTask -TaskPath $taskPath -TaskName $taskName -Action $action -Trigger $trigger `
    -Principal $principal -Settings $settings -Description 'certops Layer 2: checks (and with -Repair repairs) the key links of the certificates IIS uses, and reports to the certops bot' -Force
$mode = if ($Repair) { 'reporting and repairing key links' } else { 'reporting only' }
Write-Output "Registered $taskPath$taskName running $script every $IntervalMinutes minutes as SYSTEM, $mode."
if ($IntervalMinutes -ne 60) { Write-Output "Set report_interval = `"${IntervalMinutes}m`" in this host's [[hosts]] table of certops.toml, so the bot knows when it is silent." }
if (-not $NoStart) {
    Start-ScheduledTask -TaskPath $taskPath -TaskName $taskName
    Write-Output "Started it once now; its log is $dir\logs\self-heal-$([DateTime]::UtcNow.ToString('yyyyMMdd', [Globalization.CultureInfo]::InvariantCulture)).log"
}
