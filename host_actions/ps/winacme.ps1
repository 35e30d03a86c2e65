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
$errors = New-Object 'Collections.Generic.List[object]'
foreach ($root in $Roots) {
    if (-not (Test-Path -LiteralPath $root)) { continue }
    # an access-denied subfolder is one error record, not the end of the listing
    $walkErrors = @()
    $files = @(Get-ChildItem -LiteralPath $root -Recurse -Filter '*.renewal.json' -File -ErrorAction SilentlyContinue -ErrorVariable walkErrors)
    foreach ($e in @($walkErrors)) { $errors.Add(@{ path = [string]$e.TargetObject; error = [string]$e.Exception.Message }) }
    foreach ($f in $files) {
        try {
            $text = [IO.File]::ReadAllText($f.FullName)
        } catch {
            $errors.Add(@{ path = $f.FullName; error = $_.Exception.Message })
            continue
        }
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
# ScheduledTask.RenewalDays from settings.json next to wacs.exe: since 2.2.3 the history stores a
# DueDate only when ACME Renewal Info moved it, so certops computes due from this (null: default 55)
$renewalDays = $null
try {
    $settings = Join-Path (Split-Path -Parent $WacsPath) 'settings.json'
    if (Test-Path -LiteralPath $settings) {
        $days = (ConvertFrom-Json -InputObject ([IO.File]::ReadAllText($settings))).ScheduledTask.RenewalDays
        if ($null -ne $days) { $renewalDays = [int]$days }
    }
} catch { }
@{ renewals = @($renewals); wacs_exists = (Test-Path -LiteralPath $WacsPath); renewal_days = $renewalDays; errors = @($errors) }
