# certops-script: retire_task
# The migration procedure for one legacy task: disable it and rename its scripts to
# <name>.deprecated.YYYYMMDD, so nothing runs them and the trail stays on disk.
param(
    [Parameter(Mandatory = $true)][ValidatePattern('^\\([^\\"''`$;|&<>*?]+\\)*$')][string]$TaskFolder,
    [Parameter(Mandatory = $true)][ValidatePattern('^[^\\"''`$;|&<>*?]+$')][string]$TaskName,
    [ValidatePattern('^[A-Za-z]:\\[^"''`$;|&<>*?]+$')][string[]]$Scripts = @(),
    [Parameter(Mandatory = $true)][ValidatePattern('^[0-9]{8}$')][string]$Date
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$task = Disable-ScheduledTask -TaskPath $TaskFolder -TaskName $TaskName
$renamed = New-Object 'Collections.Generic.List[object]'
foreach ($s in $Scripts) {
    if (-not (Test-Path -LiteralPath $s -PathType Leaf)) { continue }
    $new = (Split-Path -Leaf $s) + ".deprecated.$Date"
    Rename-Item -LiteralPath $s -NewName $new
    $renamed.Add(@{ from = $s; to = (Join-Path (Split-Path -Parent $s) $new) })
}
@{ state = [string]$task.State; renamed = @($renamed) }
