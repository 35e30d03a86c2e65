# certops-script: layer_state
# Read only: what certops's host-side layers look like here. The %ProgramData%\certops folder and
# its files with their SHA-256 and ACL; for report.key only whether it holds the secret certops
# would write (SHA-256 compared here: neither the secret nor its hash leaves the host); the
# definition of the self-heal task; whether the old hourly-check task and its script are still
# there; the SHA-256 and ACL of other files certops installed (Paths, e.g. the post-renew script).
# Facts only; certops decides what differs.
param(
    [ValidatePattern('^[0-9a-f]{64}$')][string]$ReportKeySha256 = '',
    [ValidatePattern('^[A-Za-z]:\\[^"''`$;|&<>*?]+\.ps1$')][string[]]$Paths = @()
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
# certops: include locked_files.ps1
function Get-CertopsFileDoc([string]$Path) {
    return @{
        path = $Path
        exists = (Test-Path -LiteralPath $Path -PathType Leaf)
        sha256 = (Get-CertopsSha256 $Path)
        acl = (Get-CertopsAclFacts $Path)
    }
}
function Get-CertopsMinutes([string]$Duration) {
    if (-not $Duration) { return $null }
    return [Xml.XmlConvert]::ToTimeSpan($Duration).TotalMinutes
}
function Get-CertopsTaskDoc([string]$Name) {
    $t = Get-ScheduledTask -TaskPath '\certops\' -TaskName $Name -ErrorAction SilentlyContinue
    if ($null -eq $t) { return $null }
    $triggers = New-Object 'Collections.Generic.List[object]'
    foreach ($tr in @($t.Triggers)) {
        $triggers.Add(@{
            kind = [string]$tr.CimClass.CimClassName
            enabled = [bool]$tr.Enabled
            every_minutes = (Get-CertopsMinutes ([string]$tr.Repetition.Interval))
            for_minutes = (Get-CertopsMinutes ([string]$tr.Repetition.Duration))
        })
    }
    $actions = New-Object 'Collections.Generic.List[object]'
    foreach ($a in @($t.Actions)) {
        if ($null -eq $a.Execute) { continue }
        $actions.Add(@{ execute = [string]$a.Execute; arguments = [string]$a.Arguments })
    }
    return @{
        path = $t.TaskPath + $t.TaskName
        state = [string]$t.State
        user = [string]$t.Principal.UserId
        run_level = [string]$t.Principal.RunLevel
        actions = @($actions)
        triggers = @($triggers)
        multiple_instances = [string]$t.Settings.MultipleInstances
        time_limit_minutes = (Get-CertopsMinutes ([string]$t.Settings.ExecutionTimeLimit))
    }
}
$dir = Join-Path $env:ProgramData 'certops'
$key = Join-Path $dir 'report.key'
$keyDoc = @{ path = $key; exists = (Test-Path -LiteralPath $key -PathType Leaf); matches = $null; acl = (Get-CertopsAclFacts $key) }
if ($keyDoc.exists -and $ReportKeySha256) { $keyDoc.matches = ((Get-CertopsSha256 $key) -eq $ReportKeySha256) }
$files = New-Object 'Collections.Generic.List[object]'
foreach ($p in $Paths) { $files.Add((Get-CertopsFileDoc $p)) }
@{
    folder = @{ path = $dir; exists = (Test-Path -LiteralPath $dir -PathType Container); acl = (Get-CertopsAclFacts $dir) }
    self_heal = (Get-CertopsFileDoc (Join-Path $dir 'self-heal.ps1'))
    report_json = (Get-CertopsFileDoc (Join-Path $dir 'report.json'))
    report_key = $keyDoc
    files = @($files)
    task = (Get-CertopsTaskDoc 'certops self-heal')
    old_task = (Get-CertopsTaskDoc 'certops hourly check')
    old_script = (Get-CertopsFileDoc (Join-Path $dir 'certops-hourly-check.ps1'))
}
