# certops-script: rebind
# Points the named https bindings of one IIS site at one certificate. certops decides which
# bindings (those whose host the certificate covers, never CCS ones, shared non-SNI sockets only
# when asked); this script only replaces them. Each binding is replaced, not mutated: a new
# element with the same attributes (protocol, bindingInformation, sslFlags, ...) and the new hash
# and store is added and the old one removed, as win-acme does since its issue #371
# (Clients/IIS/IISClient.cs, "Replace instead of change binding"). IIS writes the http.sys
# binding itself on commit.
param(
    [Parameter(Mandatory = $true)][ValidatePattern('^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,99}$')][string]$Site,
    [Parameter(Mandatory = $true)][ValidatePattern('^[0-9A-F]{40}$')][string]$Thumbprint,
    [Parameter(Mandatory = $true)][ValidateSet('My', 'WebHosting')][string]$Store,
    [Parameter(Mandatory = $true)][ValidatePattern('^(\*|[0-9.]{7,15}|\[[0-9A-Fa-f:.]{2,45}\]):[0-9]{1,5}:[^\s:''"`$;|&<>(){}]{0,253}$')][string[]]$Bindings
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
if (-not (Test-Path -LiteralPath "Cert:\LocalMachine\$Store\$Thumbprint")) {
    throw "certificate $Thumbprint is not in LocalMachine\$Store"
}
$mwa = "$env:windir\System32\inetsrv\Microsoft.Web.Administration.dll"
if (Test-Path -LiteralPath $mwa) { Add-Type -Path $mwa }  # the partial-name load fails on some hosts
else { $null = [Reflection.Assembly]::Load('Microsoft.Web.Administration, Version=7.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35') }
$sm = New-Object Microsoft.Web.Administration.ServerManager
$s = $sm.Sites[$Site]
if ($null -eq $s) { throw "IIS has no site named $Site" }
$hash = [byte[]]::new(20)
for ($i = 0; $i -lt 20; $i++) { $hash[$i] = [Convert]::ToByte($Thumbprint.Substring($i * 2, 2), 16) }
# find every binding first, so that nothing is changed when one of them is wrong
$found = New-Object 'Collections.Generic.List[object]'
foreach ($info in $Bindings) {
    $old = $null
    foreach ($b in @($s.Bindings)) {
        if ($b.Protocol -eq 'https' -and $b.BindingInformation -eq $info) { $old = $b; break }
    }
    if ($null -eq $old) { throw "site $Site has no https binding $info" }
    if (([int]$old.SslFlags) -band 2) { throw "binding $info uses the Central Certificate Store; it takes no hash" }
    $found.Add($old)
}
$handled = @('protocol', 'bindingInformation', 'certificateHash', 'certificateStoreName')
$changed = New-Object 'Collections.Generic.List[object]'
foreach ($old in $found) {
    $new = $s.Bindings.CreateElement('binding')
    $new.Protocol = $old.Protocol
    $new.BindingInformation = $old.BindingInformation
    foreach ($attr in @($old.Attributes)) {
        if ($handled -notcontains $attr.Name -and $null -ne $attr.Value) { $new.SetAttributeValue($attr.Name, $attr.Value) }
    }
    $new.CertificateStoreName = $Store
    $new.CertificateHash = $hash
    $s.Bindings.Remove($old)
    $null = $s.Bindings.Add($new)
    $changed.Add([string]$new.BindingInformation)
}
$sm.CommitChanges()
@{ changed = @($changed); replaced = $true }
