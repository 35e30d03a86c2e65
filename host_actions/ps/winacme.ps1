# certops-script: winacme
# win-acme renewal files (raw text; certops parses them) in every base-URI folder under win-acme's
# configuration root, whether each Script step's file exists, whether wacs.exe is where the config
# says, what settings.json says, and whether wacs runs now. Its scheduled task comes from tasks.ps1.
param(
    [ValidatePattern('^[A-Za-z]:\\[^"''`$;|&<>*?]+$')][string]$WacsPath = 'C:\Program Files\win-acme\wacs.exe'
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$renewals = New-Object 'Collections.Generic.List[object]'
$errors = New-Object 'Collections.Generic.List[object]'

# settings.json next to wacs.exe decides where wacs keeps renewals and logs
$settings = $null
$settingsFile = Join-Path (Split-Path -Parent $WacsPath) 'settings.json'
try {
    if (Test-Path -LiteralPath $settingsFile) {
        $settings = ConvertFrom-Json -InputObject ([IO.File]::ReadAllText($settingsFile))
    }
} catch {
    $errors.Add(@{ path = $settingsFile; error = $_.Exception.Message })
}
$client = $null
$acme = $null
$schedule = $null
if ($null -ne $settings) {
    $client = $settings.Client
    $acme = $settings.Acme
    $schedule = $settings.ScheduledTask
}
$clientName = 'win-acme'
if ($null -ne $client -and $client.ClientName) { $clientName = [string]$client.ClientName }
$configured = ''
if ($null -ne $client -and $client.ConfigurationPath) { $configured = [string]$client.ConfigurationPath }

# the configuration root as win-acme chooses it (SettingsService.ChooseConfigPath): ConfigurationPath
# wins, and its <ClientName> subfolder if one exists (older releases created it); else ProgramData
if ($configured) {
    $root = $configured
    $withClient = Join-Path $configured $clientName
    if (Test-Path -LiteralPath $withClient -PathType Container) { $root = $withClient }
} else {
    $root = Join-Path $env:ProgramData $clientName
}

# one folder per ACME server (CleanUri of its base URI); wacs reads only the one of its --baseuri
$baseFolders = New-Object 'Collections.Generic.List[string]'
if (Test-Path -LiteralPath $root -PathType Container) {
    # an access-denied subfolder is one error record, not the end of the listing
    $walkErrors = @()
    $dirs = @(Get-ChildItem -LiteralPath $root -Directory -ErrorAction SilentlyContinue -ErrorVariable walkErrors)
    foreach ($e in @($walkErrors)) { $errors.Add(@{ path = [string]$e.TargetObject; error = [string]$e.Exception.Message }) }
    foreach ($dir in $dirs) {
        $baseFolders.Add($dir.Name)
        $walkErrors = @()
        $files = @(Get-ChildItem -LiteralPath $dir.FullName -Recurse -Filter '*.renewal.json' -File -ErrorAction SilentlyContinue -ErrorVariable walkErrors)
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
                        $scripts.Add(@{ path = [string]$step.Script; exists = (Test-Path -LiteralPath ([Environment]::ExpandEnvironmentVariables([string]$step.Script))) })
                    }
                }
            } catch { }
            $renewals.Add(@{ path = $f.FullName; text = $text; scripts = @($scripts); base_folder = $dir.Name })
        }
    }
}

# ScheduledTask.RenewalDays: since 2.2.3 the history stores a DueDate only when ACME Renewal Info
# moved it, so certops computes due from this (null: default 55)
$renewalDays = $null
try {
    if ($null -ne $schedule -and $null -ne $schedule.RenewalDays) { $renewalDays = [int]$schedule.RenewalDays }
} catch { }
$settingsDoc = @{ configuration_path = $null; log_path = $null; client_name = $clientName; default_base_uri = $null; default_base_uri_test = $null }
if ($null -ne $client) {
    if ($client.ConfigurationPath) { $settingsDoc.configuration_path = [string]$client.ConfigurationPath }
    if ($client.LogPath) { $settingsDoc.log_path = [string]$client.LogPath }
}
if ($null -ne $acme) {
    if ($acme.DefaultBaseUri) { $settingsDoc.default_base_uri = [string]$acme.DefaultBaseUri }
    if ($acme.DefaultBaseUriTest) { $settingsDoc.default_base_uri_test = [string]$acme.DefaultBaseUriTest }
}

# a running wacs rewrites its renewal files when it ends: an edit made meanwhile would be lost
$wacsProcesses = @(Get-Process -Name 'wacs' -ErrorAction SilentlyContinue | ForEach-Object { @{ pid = $_.Id; path = [string]$_.Path } })
$renewTasks = New-Object 'Collections.Generic.List[object]'
$certopsTasks = @()
try {
    $certopsTasks = @(Get-ScheduledTask -TaskPath '\certops\' -ErrorAction SilentlyContinue)
} catch {
    # no \certops\ folder yet is the common case (its "not found" text is localised): nothing to list
    $certopsTasks = @()
}
foreach ($t in $certopsTasks) {
    if ($t.TaskName -notlike 'certops renew *') { continue }
    try {
        $info = Get-ScheduledTaskInfo -InputObject $t
        $renewTasks.Add(@{
            name = $t.TaskName
            state = [string]$t.State
            last_run = $(if ($info.LastRunTime) { $info.LastRunTime.ToString('o') } else { $null })
            last_result = [long]$info.LastTaskResult
            arguments = [string]@($t.Actions)[0].Arguments
        })
    } catch {
        $errors.Add(@{ path = '\certops\' + $t.TaskName; error = $_.Exception.Message })
    }
}
@{
    renewals = @($renewals)
    wacs_exists = (Test-Path -LiteralPath $WacsPath)
    renewal_days = $renewalDays
    errors = @($errors)
    config_root = $root
    base_folders = @($baseFolders)
    settings = $settingsDoc
    wacs_processes = @($wacsProcesses)
    renew_tasks = @($renewTasks)
    now = (Get-Date).ToString('o')
}
