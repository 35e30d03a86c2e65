# certops-script: repair_store
# Rebuilds the certificate-to-key link with certutil, then prints certutil's view of the store
# entry. The output is returned raw; certops reads it (and re-runs the key test itself).
param(
    [Parameter(Mandatory = $true)][ValidateSet('My', 'WebHosting')][string]$Store,
    [Parameter(Mandatory = $true)][ValidatePattern('^[0-9A-F]{40}$')][string]$Thumbprint
)
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
# 5.1 turns a native command's stderr into error records under 2>&1; with 'Stop' that throws,
# so native calls run under 'Continue' and are judged by their exit code and text.
$ErrorActionPreference = 'Continue'
# -silent: a key provider that wants to show UI cannot, in a WinRM session (session 0); without
# it certutil may wait for a prompt nobody sees until the action's deadline
$repair = (& certutil.exe -silent -repairstore $Store $Thumbprint 2>&1 | Out-String)
$repairExit = $LASTEXITCODE
$view = (& certutil.exe -silent -store $Store $Thumbprint 2>&1 | Out-String)
$viewExit = $LASTEXITCODE
$ErrorActionPreference = 'Stop'
@{ repair_output = $repair; repair_exit = $repairExit; store_output = $view; store_exit = $viewExit }
