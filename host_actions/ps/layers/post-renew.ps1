# certops-script: certops_post_renew
# certops Layer 3: post-renew.ps1, installed as <wacs folder>\Scripts\certops_post_renew.ps1 and
# run by win-acme as SYSTEM right after its IIS installation step, as
#   certops_post_renew.ps1 -Thumbprint {CertThumbprint}
# (certops host add-post-renew-step HOST RENEWAL_ID adds that Script step). Idempotent.
# It finds the new certificate in LocalMachine WebHosting or My, tests its private key for real
# (open it, sign, verify the signature with the certificate's public key; RSA or ECDSA), rebuilds
# the certificate-to-key link with certutil -silent -repairstore when the test fails (only then),
# and checks that the IIS https bindings whose names it is the newest certificate for, and the
# http.sys entries serving them, point at it. It never changes a binding: a wrong one is reported.
# Logs to %ProgramData%\certops\logs\post-renew-YYYYMMDD.log (UTC days, 14 kept, 5 MB a day) and
# to the console (win-acme's log), and reports to the bot (kind post-renew, docs/report-api.md)
# when %ProgramData%\certops\report.json and report.key exist.
# Exit codes (win-acme logs a non-zero one and marks the step failed): 0 ok, 1 the key is still
# unusable, 2 anything else is wrong (a binding, or the check could not finish), 3 the certificate
# is in neither store.
# Generated file: edit host_actions/ps/layers/post-renew.ps1 and the includes it names, then run
# python -m host_actions.layers --write deploy/windows
param([Parameter(Mandatory = $true)][ValidatePattern('^[0-9A-Fa-f]{40}$')][string]$Thumbprint)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
$Thumbprint = $Thumbprint.ToUpperInvariant()

# certops: include key_test.ps1
# certops: include layer_common.ps1
# certops: include report.ps1

$run = New-CertopsRun -Kind 'post-renew' -Repair $true
Write-CertopsLog $run "post-renew started for $Thumbprint as $([Security.Principal.WindowsIdentity]::GetCurrent().Name)"
$code = 0
try {
    $certs = Get-CertopsCertificates $run
    $copies = @($certs | Where-Object { $_.Cert.Thumbprint -eq $Thumbprint } | Sort-Object { $_.Store -ne 'WebHosting' })
    if ($copies.Count -eq 0) {
        Add-CertopsError $run "certificate $Thumbprint is in neither LocalMachine\WebHosting nor LocalMachine\My"
        $code = 3
    } else {
        $bindings = Get-CertopsBindings $run
        # only the bindings this certificate is the newest one for; other sites are not its business
        $mine = @((Get-CertopsTargets $certs $bindings).targets | Where-Object { $_.entry.Cert.Thumbprint -eq $Thumbprint })
        if ($mine.Count -eq 0) {
            Add-CertopsError $run ("no IIS https binding uses the names of $Thumbprint (" + (@($copies[0].Names) -join ', ') +
                "): win-acme's IIS step bound nothing to it")
            $mine = @(@{ entry = $copies[0]; bindings = @() })
        }
        foreach ($target in $mine) {
            if (-not (Test-CertopsCertificate $run $target.entry $target.bindings -Repair $true)) { $code = 1 }
        }
    }
} catch {
    Add-CertopsError $run "the check stopped: $($_.Exception.Message)"
}
if ($code -eq 0 -and $run.errors.Count -gt 0) { $code = 2 }
$sent = Send-CertopsReport (ConvertTo-CertopsReport $run)
Write-CertopsLog $run $sent.text
Write-CertopsLog $run "post-renew finished for ${Thumbprint}: exit $code"
exit $code
