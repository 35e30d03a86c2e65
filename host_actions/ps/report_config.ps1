# certops-script: report_config
# Writes what the host-side layers report with, each file only when certops passes its content:
# %ProgramData%\certops\report.json (where to post, as which host) and report.key (the secret
# the reports are signed with), SYSTEM and Administrators only, in a folder locked the same way.
# The secret arrives on stdin with the job, never on a command line; certops checked it against
# the same pattern before sending, so no error here can quote it. The result says only what was
# written, never what.
param(
    [ValidatePattern('^\{"url": "https?://[^"\\\s]+", "host": "[A-Za-z0-9][A-Za-z0-9._-]{0,62}"\}$')][string]$ReportJson = '',
    [ValidatePattern('^[ -~]{1,1024}$')][string]$ReportKey = ''
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
# certops: include locked_files.ps1
$dir = Join-Path $env:ProgramData 'certops'
$created = Initialize-CertopsFolder $dir
$written = New-Object 'Collections.Generic.List[string]'
if ($ReportJson) {
    Write-CertopsLockedFile (Join-Path $dir 'report.json') $ReportJson
    $written.Add('report.json')
}
if ($ReportKey) {
    Write-CertopsLockedFile (Join-Path $dir 'report.key') $ReportKey
    $written.Add('report.key')
}
@{ folder = $dir; folder_created = [bool]$created; written = @($written) }
