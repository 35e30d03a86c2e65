# certops-script: add_post_renew_step
# Writes the post-renew script and the new renewal file that certops prepared, after backing up
# the old one. Refuses if the renewal changed since certops read it (SHA-256 of its text).
param(
    [Parameter(Mandatory = $true)][ValidatePattern('^[A-Za-z]:\\[^"''`$;|&<>*?]+\.renewal\.json$')][string]$RenewalPath,
    [Parameter(Mandatory = $true)][ValidatePattern('^[0-9a-f]{64}$')][string]$ExpectedSha256,
    [Parameter(Mandatory = $true)][string]$NewText,
    [Parameter(Mandatory = $true)][ValidatePattern('^[A-Za-z]:\\[^"''`$;|&<>*?]+\.ps1$')][string]$ScriptPath,
    [Parameter(Mandatory = $true)][string]$ScriptText,
    [Parameter(Mandatory = $true)][ValidatePattern('^[0-9]{14}$')][string]$Stamp
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$utf8 = New-Object Text.UTF8Encoding($false)
$old = [IO.File]::ReadAllText($RenewalPath)
$sha = [Security.Cryptography.SHA256]::Create()
$actual = ([BitConverter]::ToString($sha.ComputeHash($utf8.GetBytes($old))) -replace '-', '').ToLower()
if ($actual -ne $ExpectedSha256) { throw 'the renewal file changed since certops read it' }
$null = ConvertFrom-Json -InputObject $NewText
$dir = Split-Path -Parent $ScriptPath
if (-not (Test-Path -LiteralPath $dir)) { $null = New-Item -ItemType Directory -Path $dir }
[IO.File]::WriteAllText($ScriptPath, $ScriptText, $utf8)
$backup = "$RenewalPath.certops-$Stamp.bak"
Copy-Item -LiteralPath $RenewalPath -Destination $backup
[IO.File]::WriteAllText($RenewalPath, $NewText, $utf8)
@{ backup = $backup; script = $ScriptPath }
