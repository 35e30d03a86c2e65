# certops-script: retire_task
# The migration procedure for one legacy task: disable it and rename its scripts to
# <name>.deprecated.YYYYMMDD, so nothing runs them and the trail stays on disk. certops decides
# which scripts (never one another task or a renewal uses); this script only refuses, as a last
# guard, a path under %windir% or Program Files, and says so in "skipped".
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
$skipped = New-Object 'Collections.Generic.List[object]'
$protected = @($env:windir, $env:SystemRoot, $env:ProgramFiles, ${env:ProgramFiles(x86)}, $env:ProgramW6432) |
    Where-Object { $_ } | ForEach-Object { $_.TrimEnd('\') + '\' }
foreach ($s in $Scripts) {
    $full = [IO.Path]::GetFullPath($s)
    $under = @($protected | Where-Object { $full.StartsWith($_, [StringComparison]::OrdinalIgnoreCase) })
    if ($under.Count -gt 0) { $skipped.Add(@{ path = $s; reason = "it is under $($under[0])" }); continue }
    if (-not (Test-Path -LiteralPath $s -PathType Leaf)) { continue }
    $new = (Split-Path -Leaf $s) + ".deprecated.$Date"
    Rename-Item -LiteralPath $s -NewName $new
    $renamed.Add(@{ from = $s; to = (Join-Path (Split-Path -Parent $s) $new) })
}
@{ state = [string]$task.State; renamed = @($renamed); skipped = @($skipped) }
