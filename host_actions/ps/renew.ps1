# certops-script: renew
# Runs win-acme once for one renewal (or all that are due) and returns its console output.
param(
    [Parameter(Mandatory = $true)][ValidatePattern('^[A-Za-z]:\\[^"''`$;|&<>*?]+\\wacs\.exe$')][string]$WacsPath,
    [ValidatePattern('^([A-Za-z0-9_-]{1,64})?$')][string]$RenewalId = '',
    [bool]$Force = $false
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$wacsArgs = @('--renew', '--verbose')
if ($RenewalId) { $wacsArgs += @('--id', $RenewalId) }
if ($Force) { $wacsArgs += '--force' }
# 'Continue': under 'Stop', 5.1 would throw on the first line wacs writes to stderr
$ErrorActionPreference = 'Continue'
$output = (& $WacsPath @wacsArgs 2>&1 | Out-String)
$code = $LASTEXITCODE
$ErrorActionPreference = 'Stop'
@{ exit = $code; output = $output }
