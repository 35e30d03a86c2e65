# certops-script: winacme
# win-acme renewal files (raw text; certops parses them), whether each Script step's file
# exists, and whether wacs.exe is where the config says. Its scheduled task comes from tasks.ps1.
param(
    [ValidatePattern('^[A-Za-z]:\\[^"''`$;|&<>*?]+$')][string[]]$Roots = @("$env:ProgramData\win-acme"),
    [ValidatePattern('^[A-Za-z]:\\[^"''`$;|&<>*?]+$')][string]$WacsPath = 'C:\Program Files\win-acme\wacs.exe'
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$renewals = New-Object 'Collections.Generic.List[object]'
foreach ($root in $Roots) {
    if (-not (Test-Path -LiteralPath $root)) { continue }
    foreach ($f in @(Get-ChildItem -LiteralPath $root -Recurse -Filter '*.renewal.json' -File)) {
        $text = [IO.File]::ReadAllText($f.FullName)
        $scripts = New-Object 'Collections.Generic.List[object]'
        try {
            foreach ($step in @((ConvertFrom-Json -InputObject $text).InstallationPluginOptions)) {
                if ($step.Script) {
                    $scripts.Add(@{ path = [string]$step.Script; exists = (Test-Path -LiteralPath $step.Script) })
                }
            }
        } catch { }
        $renewals.Add(@{ path = $f.FullName; text = $text; scripts = @($scripts) })
    }
}
@{ renewals = @($renewals); wacs_exists = (Test-Path -LiteralPath $WacsPath) }
