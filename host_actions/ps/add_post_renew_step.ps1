# certops-script: add_post_renew_step
# Writes the post-renew script and the new renewal file that certops prepared, keeping a backup
# of the old one. Refuses if the renewal changed since certops read it (SHA-256 of its text), or
# while wacs runs: win-acme rewrites the renewal file from memory when a run ends, which would
# drop the new step.
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

# certops checked this before; checked again here, next to the write, because a run may have begun
$wacs = @(Get-Process -Name 'wacs' -ErrorAction SilentlyContinue)
if ($wacs.Count -gt 0) {
    throw ('wacs.exe is running (process ' + (($wacs | ForEach-Object { $_.Id }) -join ', ') + '); win-acme rewrites renewal files when a run ends, so the step would be lost')
}
$busy = @(Get-ScheduledTask -TaskPath '\certops\' -ErrorAction SilentlyContinue | Where-Object { $_.TaskName -like 'certops renew *' -and [string]$_.State -eq 'Running' })
if ($busy.Count -gt 0) { throw ('certops task ' + $busy[0].TaskName + ' is running wacs.exe; try again when it has ended') }

$old = [IO.File]::ReadAllText($RenewalPath)
$sha = [Security.Cryptography.SHA256]::Create()
$actual = ([BitConverter]::ToString($sha.ComputeHash($utf8.GetBytes($old))) -replace '-', '').ToLower()
if ($actual -ne $ExpectedSha256) { throw 'the renewal file changed since certops read it' }
$null = ConvertFrom-Json -InputObject $NewText

# The post-renew script runs as SYSTEM on every renewal: only SYSTEM and Administrators may change
# it, whatever the folder would let it inherit (wacs may live outside Program Files).
$dir = Split-Path -Parent $ScriptPath
if (-not (Test-Path -LiteralPath $dir)) { $null = New-Item -ItemType Directory -Path $dir }
$acl = New-Object Security.AccessControl.FileSecurity
$acl.SetAccessRuleProtection($true, $false)
foreach ($sid in @('S-1-5-18', 'S-1-5-32-544')) {
    $who = New-Object Security.Principal.SecurityIdentifier($sid)
    $acl.AddAccessRule((New-Object Security.AccessControl.FileSystemAccessRule($who, 'FullControl', 'Allow')))
}
$scriptTemp = "$ScriptPath.certops.new"
[IO.File]::WriteAllText($scriptTemp, '', $utf8)
[IO.File]::SetAccessControl($scriptTemp, $acl)
[IO.File]::WriteAllText($scriptTemp, $ScriptText, $utf8)
if (Test-Path -LiteralPath $ScriptPath -PathType Leaf) { Remove-Item -LiteralPath $ScriptPath -Force }
# a move within the folder keeps the temporary file's protected ACL; set once more to be sure
[IO.File]::Move($scriptTemp, $ScriptPath)
[IO.File]::SetAccessControl($ScriptPath, $acl)
$written = [IO.File]::GetAccessControl($ScriptPath)
$identities = @($written.GetAccessRules($true, $true, [Security.Principal.SecurityIdentifier]) | ForEach-Object { $_.IdentityReference.Value + ':' + [string]$_.FileSystemRights + ':' + [string]$_.AccessControlType })

# As win-acme writes its own renewal files: a temporary file in the same folder, then
# File.Replace, which keeps the old file as the backup. Never a half-written renewal file.
$backup = "$RenewalPath.certops-$Stamp.bak"
$temp = "$RenewalPath.certops.new"
[IO.File]::WriteAllText($temp, $NewText, $utf8)
[IO.File]::Replace($temp, $RenewalPath, $backup)
@{
    backup = $backup
    script = $ScriptPath
    script_acl = @{ protected = [bool]$written.AreAccessRulesProtected; rules = @($identities) }
}
