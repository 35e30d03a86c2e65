# >>> certops locked files: host_actions/ps/include/locked_files.ps1, put into layer_state.ps1,
# report_config.ps1 and install_self_heal.ps1 where they say so. What certops keeps under
# %ProgramData%\certops runs as SYSTEM or holds the report secret: SYSTEM and Administrators full
# control, inheritance off, set as each file is created, never after its content is in it.
$certopsSids = @('S-1-5-18', 'S-1-5-32-544')

function Get-CertopsSha256([string]$Path) {
    if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) { return $null }
    $sha = [Security.Cryptography.SHA256]::Create()
    try { return ([BitConverter]::ToString($sha.ComputeHash([IO.File]::ReadAllBytes($Path))) -replace '-', '').ToLower() }
    finally { $sha.Dispose() }
}

function Get-CertopsAclFacts([string]$Path) {
    if (-not (Test-Path -LiteralPath $Path)) { return $null }
    $acl = Get-Acl -LiteralPath $Path
    $rules = @($acl.GetAccessRules($true, $true, [Security.Principal.SecurityIdentifier]) | ForEach-Object {
        $_.IdentityReference.Value + ':' + [string]$_.FileSystemRights + ':' + [string]$_.AccessControlType })
    return @{ protected = [bool]$acl.AreAccessRulesProtected; rules = @($rules) }
}

function New-CertopsAcl([bool]$Folder) {
    if ($Folder) { $acl = New-Object Security.AccessControl.DirectorySecurity }
    else { $acl = New-Object Security.AccessControl.FileSecurity }
    $acl.SetAccessRuleProtection($true, $false)
    foreach ($sid in $certopsSids) {
        $who = New-Object Security.Principal.SecurityIdentifier($sid)
        if ($Folder) {
            $rule = New-Object Security.AccessControl.FileSystemAccessRule($who, 'FullControl', 'ContainerInherit, ObjectInherit', 'None', 'Allow')
        } else {
            $rule = New-Object Security.AccessControl.FileSystemAccessRule($who, 'FullControl', 'Allow')
        }
        $acl.AddAccessRule($rule)
    }
    return $acl
}

# The folder, created with its ACL (never a moment with ProgramData's, which lets Users read and
# create), or given it when it is there already.
function Initialize-CertopsFolder([string]$Dir) {
    $acl = New-CertopsAcl $true
    if (Test-Path -LiteralPath $Dir -PathType Container) {
        [IO.Directory]::SetAccessControl($Dir, $acl)
        return $false
    }
    $null = [IO.Directory]::CreateDirectory($Dir, $acl)
    return $true
}

# A temporary file created with the protected ACL, the text written into it, then moved into
# place (a move in the folder keeps that ACL; it is set once more to be sure).
function Write-CertopsLockedFile([string]$Path, [string]$Text) {
    $acl = New-CertopsAcl $false
    $temp = "$Path.certops.new"
    if (Test-Path -LiteralPath $temp) { Remove-Item -LiteralPath $temp -Force }
    $bytes = (New-Object Text.UTF8Encoding($false)).GetBytes($Text)
    $stream = [IO.File]::Create($temp, 4096, [IO.FileOptions]::None, $acl)
    try { $stream.Write($bytes, 0, $bytes.Length) } finally { $stream.Dispose() }
    if (Test-Path -LiteralPath $Path -PathType Leaf) { Remove-Item -LiteralPath $Path -Force }
    [IO.File]::Move($temp, $Path)
    [IO.File]::SetAccessControl($Path, $acl)
}
# <<< certops locked files
