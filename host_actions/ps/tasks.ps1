# certops-script: tasks
# Every scheduled task outside \Microsoft\ with its last result, its actions, whether the
# programs and scripts they name exist (and the first 16 KB of each script), whether the
# account still resolves, and the host's service names. certops judges all of it.
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
function Get-CertopsFileFacts([string]$Execute, [string]$Arguments, [string]$WorkDir) {
    $out = New-Object 'Collections.Generic.List[object]'
    $tokens = @([Environment]::ExpandEnvironmentVariables($Execute).Trim('"'))
    foreach ($m in [regex]::Matches([string]$Arguments, '"[^"]+"|\S+')) {
        $tok = [Environment]::ExpandEnvironmentVariables($m.Value.Trim('"'))
        if ($tok -match '\.(ps1|bat|cmd|exe|vbs|js)$') { $tokens += $tok }
    }
    foreach ($tok in $tokens) {
        $path = $tok
        $exists = $false
        $text = $null
        try {
            if (-not [IO.Path]::IsPathRooted($path)) {
                $cmd = Get-Command -Name $path -CommandType Application -ErrorAction SilentlyContinue
                if ($cmd) { $path = @($cmd)[0].Source }
                elseif ($WorkDir) { $path = Join-Path $WorkDir $tok }
            }
            $exists = [IO.Path]::IsPathRooted($path) -and (Test-Path -LiteralPath $path -PathType Leaf)
            if ($exists -and $path -match '\.(ps1|bat|cmd|vbs|js)$') {
                $all = [IO.File]::ReadAllText($path)
                $text = $all.Substring(0, [Math]::Min($all.Length, 16384))
            }
        } catch { }  # an odd token (illegal characters, no access) is reported as not found
        $out.Add(@{ token = $tok; path = $path; exists = $exists; text = $text })
    }
    return , $out.ToArray()
}
$tasks = New-Object 'Collections.Generic.List[object]'
$errors = New-Object 'Collections.Generic.List[object]'
# A task with malformed XML makes Get-ScheduledTask write an error for that task: collect it and
# keep the others (under 'Stop' the first one would end the whole script).
$listErrors = @()
$all = @(Get-ScheduledTask -ErrorAction SilentlyContinue -ErrorVariable listErrors)
foreach ($e in @($listErrors)) { $errors.Add(@{ task = $null; error = [string]$e.Exception.Message }) }
foreach ($t in @($all | Where-Object { $_.TaskPath -notlike '\Microsoft\*' })) {
    $taskPath = $null
    try {
        $taskPath = $t.TaskPath + $t.TaskName
        $info = Get-ScheduledTaskInfo -InputObject $t
        $user = [string]$t.Principal.UserId
        $resolves = $null
        if ($user) {
            try {
                $null = (New-Object Security.Principal.NTAccount($user)).Translate([Security.Principal.SecurityIdentifier])
                $resolves = $true
            } catch { $resolves = $false }
        }
        $actions = New-Object 'Collections.Generic.List[object]'
        foreach ($a in @($t.Actions)) {
            if ($null -eq $a.Execute) { continue }
            $actions.Add(@{
                execute = [string]$a.Execute
                arguments = [string]$a.Arguments
                working_directory = [string]$a.WorkingDirectory
                files = (Get-CertopsFileFacts $a.Execute $a.Arguments $a.WorkingDirectory)
            })
        }
        $tasks.Add(@{
            path = $taskPath
            state = [string]$t.State
            user = $user
            user_resolves = $resolves
            last_run = if ($info.LastRunTime) { $info.LastRunTime.ToUniversalTime().ToString('o') } else { $null }
            last_result = [long]$info.LastTaskResult
            next_run = if ($info.NextRunTime) { $info.NextRunTime.ToUniversalTime().ToString('o') } else { $null }
            missed_runs = [long]$info.NumberOfMissedRuns
            actions = @($actions)
        })
    } catch {
        # e.g. the task was deleted between the listing and Get-ScheduledTaskInfo
        $errors.Add(@{ task = $taskPath; error = $_.Exception.Message })
    }
}
$services = @()
try { $services = @(Get-Service -ErrorAction SilentlyContinue | ForEach-Object { $_.Name }) }
catch { $errors.Add(@{ task = $null; error = $_.Exception.Message }) }
# the folders retire-task never renames anything under, and what %VAR% in a renewal's Script means
$environment = @{ windir = $env:windir; SystemRoot = $env:SystemRoot; ProgramFiles = $env:ProgramFiles
    'ProgramFiles(x86)' = ${env:ProgramFiles(x86)}; ProgramW6432 = $env:ProgramW6432; ProgramData = $env:ProgramData }
@{ tasks = @($tasks); services = $services; errors = @($errors); environment = $environment }
