# >>> certops report: host_actions/ps/include/report.ps1, put into the layer scripts (self-heal.ps1,
# post-renew.ps1) where they say so. Signs and posts one run's report to the bot, as
# docs/report-api.md describes: POST /api/report, HMAC-SHA256 over "v1:<timestamp>:<body>".
function Get-CertopsReportSignature([string]$Secret, [string]$Timestamp, [byte[]]$Body) {
    $hmac = New-Object System.Security.Cryptography.HMACSHA256 (, [Text.Encoding]::UTF8.GetBytes($Secret))
    $prefix = [Text.Encoding]::UTF8.GetBytes("v1:${Timestamp}:")
    $hash = $hmac.ComputeHash([byte[]]($prefix + $Body))
    'v1=' + (($hash | ForEach-Object { $_.ToString('x2') }) -join '')
}
function Send-CertopsReport($Report) {
    # Reads where to report and as which [[hosts]] name (%ProgramData%\certops\report.json) and the
    # secret (report.key), fills in the report's host, and posts it. Returns @{ sent; text }, and
    # never throws: a report that cannot be sent must not undo what the run did.
    $dir = Join-Path $env:ProgramData 'certops'
    $configFile = Join-Path $dir 'report.json'
    $keyFile = Join-Path $dir 'report.key'
    try {
        if (-not (Test-Path -LiteralPath $configFile -PathType Leaf)) { return @{ sent = $false; text = "did not report: $configFile is missing" } }
        if (-not (Test-Path -LiteralPath $keyFile -PathType Leaf)) { return @{ sent = $false; text = "did not report: $keyFile is missing" } }
        $config = ConvertFrom-Json -InputObject ([IO.File]::ReadAllText($configFile))
        $url = [string]$config.url
        $hostName = [string]$config.host
        $secret = ([IO.File]::ReadAllText($keyFile)).Trim()
        if ($url -notmatch '^https?://' -or -not $hostName) {
            return @{ sent = $false; text = "did not report: $configFile needs a url (https://...) and a host" }
        }
        if (-not $secret) { return @{ sent = $false; text = "did not report: $keyFile is empty" } }
        $Report['host'] = $hostName
        # 5.1: without this, an array wrapped in a PSObject is written as {"value":[...],"Count":n}
        Remove-TypeData -TypeName System.Array -ErrorAction SilentlyContinue
        $json = ConvertTo-Json -InputObject $Report -Depth 8 -Compress
        # encoded once: these very bytes are signed and sent
        $body = (New-Object Text.UTF8Encoding $false).GetBytes($json)
        $timestamp = [string]([DateTimeOffset]::UtcNow.ToUnixTimeSeconds())
        $signature = Get-CertopsReportSignature -Secret $secret -Timestamp $timestamp -Body $body
        [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
        $headers = @{ 'X-Certops-Host' = $hostName; 'X-Certops-Timestamp' = $timestamp; 'X-Certops-Signature' = $signature }
        $response = Invoke-WebRequest -Uri $url -UseBasicParsing -Method Post -ContentType 'application/json; charset=utf-8' -Headers $headers -Body $body -TimeoutSec 30 -MaximumRedirection 0
        if ([int]$response.StatusCode -ne 200) {
            return @{ sent = $false; text = "did not report: $url answered HTTP $([int]$response.StatusCode)" }
        }
        return @{ sent = $true; text = "reported to $url" }
    } catch {
        $why = $_.Exception.Message
        $answer = $_.Exception.Response  # an HTTP error: the bot says why in a short JSON body
        if ($null -ne $answer) {
            try {
                $text = [IO.StreamReader]::new($answer.GetResponseStream()).ReadToEnd()
                if ($text.Length -gt 300) { $text = $text.Substring(0, 300) }
                $why = "HTTP $([int]$answer.StatusCode) $text"
            } catch { $why = "HTTP $([int]$answer.StatusCode)" }
        }
        return @{ sent = $false; text = "did not report: $why" }
    }
}
# <<< certops report
