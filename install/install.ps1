<#
.SYNOPSIS
    Installs ferry as a Windows service, or upgrades an installed one.

.DESCRIPTION
    Copies ferry.exe into -InstallDir, creates the deployment folder -Deployment with
    jobs\ (the job files) and var\ (journal, archives, logs), copies the example jobs if
    asked, registers the service with `ferry.exe service install` under the given account
    and starts it.

    Safe to run again: an installed service is stopped, its journal backed up to
    var\backup, ferry.exe replaced and the service registered anew; jobs\ and var\ keep
    their contents.

    Run it in an elevated PowerShell (as Administrator). The account given with -User
    needs the right "Log on as a service" (Group Policy, or services.msc grants it when the
    account is set there); the script grants it modify access to the deployment folder.

.PARAMETER Binary
    The ferry.exe to install. Default: ferry.exe beside this script, else in the current
    folder.

.PARAMETER InstallDir
    Where ferry.exe goes. Default: C:\Program Files\ferry.

.PARAMETER Deployment
    The deployment folder: jobs\ and var\ below it. Default: C:\ProgramData\ferry.

.PARAMETER Examples
    Copy the example jobs (the jobs\ folder beside this script's folder, as in the source
    tree) into the deployment, leaving job files that exist alone.

.PARAMETER User
    The account the service runs as, DOMAIN\name. Default: LocalSystem, which reaches
    shares as the computer account. A group managed service account (DOMAIN\name$) and
    NT AUTHORITY\... or NT SERVICE\... accounts need no password; for any other account
    the script asks for its password (never shown, never written to disk).

.PARAMETER Workers
    How many files are processed at once, over all jobs. Default: 32.

.PARAMETER Grace
    How long a stop waits for files in progress. Default: 30s.

.PARAMETER NoStart
    Install, but do not start the service.

.EXAMPLE
    .\install.ps1 -Examples
    Installs ferry running as LocalSystem, with the example jobs, and starts it.

.EXAMPLE
    .\install.ps1 -User CORP\svc-ferry
    Installs or upgrades ferry running as a domain account (asks for its password).

.EXAMPLE
    .\install.ps1 -Binary .\target\x86_64-pc-windows-gnu\release\ferry.exe -NoStart
#>
[CmdletBinding()]
param(
    [string]$Binary,
    [string]$InstallDir = (Join-Path $env:ProgramFiles 'ferry'),
    [string]$Deployment = (Join-Path $env:ProgramData 'ferry'),
    [switch]$Examples,
    [string]$User,
    [int]$Workers = 32,
    [string]$Grace = '30s',
    [switch]$NoStart
)

$ErrorActionPreference = 'Stop'
$ServiceName = 'ferry'

function Say([string]$Text) { Write-Host "install.ps1: $Text" }

# Runs ferry.exe with the arguments; stops the script when it fails.
function Invoke-Ferry([string]$Exe, [string[]]$Arguments) {
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) {
        throw "ferry.exe $($Arguments -join ' ') failed (exit code $LASTEXITCODE)"
    }
}

$principal = New-Object Security.Principal.WindowsPrincipal(
    [Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw 'run this script in an elevated PowerShell (as Administrator)'
}

if (-not $Binary) {
    $Binary = @((Join-Path $PSScriptRoot 'ferry.exe'), (Join-Path (Get-Location) 'ferry.exe')) |
        Where-Object { Test-Path $_ } | Select-Object -First 1
}
if (-not $Binary -or -not (Test-Path $Binary)) {
    throw 'no ferry.exe found: give its path with -Binary'
}
$version = & $Binary --version
if ($LASTEXITCODE -ne 0) { throw "$Binary does not run" }
Say "installing $version"

$exe = Join-Path $InstallDir 'ferry.exe'
$jobs = Join-Path $Deployment 'jobs'

# An installed service: stopped, and its journal backed up, before anything changes.
if (Get-Service -Name $ServiceName -ErrorAction SilentlyContinue) {
    Say "stopping and removing the installed service (jobs and journal stay)"
    if (Test-Path $exe) {
        & $exe --jobs $jobs journal backup (Join-Path $Deployment 'var\backup')
        if ($LASTEXITCODE -ne 0) { Say 'warning: the journal could not be backed up' }
        Invoke-Ferry $exe @('service', 'uninstall')
    } else {
        Invoke-Ferry $Binary @('service', 'uninstall')
    }
}

# The binary, and the deployment: existing folders keep their contents.
New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
Copy-Item -Force $Binary $exe
foreach ($dir in @($Deployment, $jobs, (Join-Path $Deployment 'var'),
        (Join-Path $Deployment 'var\backup'), (Join-Path $Deployment 'var\log'))) {
    New-Item -ItemType Directory -Force -Path $dir | Out-Null
}
if ($Examples) {
    $exampleJobs = Join-Path (Split-Path $PSScriptRoot -Parent) 'jobs'
    if (-not (Test-Path $exampleJobs)) { throw "no example jobs in $exampleJobs" }
    Get-ChildItem -Path $exampleJobs -Filter '*.toml' | ForEach-Object {
        $target = Join-Path $jobs $_.Name
        if (-not (Test-Path $target)) {
            Copy-Item $_.FullName $target
            Say "example job $($_.Name) copied"
        }
    }
}
# A job file with problems does not stop the others: said, not fatal.
& $exe --jobs $jobs check
if ($LASTEXITCODE -ne 0) { Say "warning: ferry check found problems (above); the valid jobs run" }

# The service, under its account; the password goes to ferry.exe in an environment
# variable of this process only, and is removed right after.
$install = @('--jobs', $jobs, 'service', 'install', '--workers', "$Workers", '--grace', $Grace)
if ($User) {
    $install += @('--user', $User)
    $needsPassword = -not ($User.EndsWith('$') -or $User -match '^NT (AUTHORITY|SERVICE)\\')
    if ($needsPassword) {
        $secure = Read-Host -AsSecureString "Password of $User"
        $env:FERRY_SERVICE_PASSWORD = [Runtime.InteropServices.Marshal]::PtrToStringBSTR(
            [Runtime.InteropServices.Marshal]::SecureStringToBSTR($secure))
        $install += @('--password-env', 'FERRY_SERVICE_PASSWORD')
    }
    # The service's account reads and writes the deployment (journal, archives, logs).
    & icacls $Deployment /grant "${User}:(OI)(CI)M" /T /Q | Out-Null
    if ($LASTEXITCODE -ne 0) { Say "warning: could not grant $User access to $Deployment" }
}
try {
    Invoke-Ferry $exe $install
} finally {
    Remove-Item Env:\FERRY_SERVICE_PASSWORD -ErrorAction SilentlyContinue
}

if ($NoStart) {
    Say "installed; start it with: & '$exe' service start"
} else {
    Invoke-Ferry $exe @('service', 'start')
}
Say "jobs: $jobs; log: $(Join-Path $Deployment 'var\log')\ferry.log.YYYY-MM-DD"
