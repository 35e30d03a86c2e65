# certops-script: bootstrap
# Runs through -EncodedCommand, so it must stay short. The real work arrives on stdin as one
# base64 line of UTF-8 JSON: {"parts": [{"name": ..., "script": ..., "params": {...}}]}.
# Parameters are bound by splatting, never spliced into script text.
# Each part prints one line: "CERTOPS " + base64(UTF-8 JSON {name, ok, result, error, hresult}).
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
# Constrained Language Mode (AppLocker/WDAC script enforcement) blocks [ScriptBlock]::Create,
# [Convert] and Add-Type, which every part needs: say so in one line certops recognises, exit 3.
if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') {
    'CERTOPS-LANGUAGE-MODE ' + $ExecutionContext.SessionState.LanguageMode
    exit 3
}
try {
    $raw = ($input | Out-String) -replace '\s', ''
    $job = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($raw)) | ConvertFrom-Json
} catch {
    [Console]::Error.WriteLine('certops: the job on stdin could not be read')
    exit 2
}
foreach ($part in @($job.parts)) {
    $doc = @{ name = $part.name; ok = $true; result = $null }
    try {
        $splat = @{}
        foreach ($p in $part.params.PSObject.Properties) { $splat[$p.Name] = $p.Value }
        $out = @(& ([ScriptBlock]::Create($part.script)) @splat)
        if ($out.Count -gt 0) { $doc.result = $out[-1] }
    } catch {
        $e = $_.Exception
        while ($null -ne $e.InnerException) { $e = $e.InnerException }
        $doc.ok = $false
        $doc.error = $e.Message
        $doc.hresult = '0x{0:X8}' -f $e.HResult
    }
    $json = ConvertTo-Json -InputObject $doc -Depth 12 -Compress
    'CERTOPS ' + [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($json))
}
exit 0
