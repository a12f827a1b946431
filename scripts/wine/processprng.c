/*
 * A stand-in bcryptprimitives.dll for Wine 8 (Debian bookworm's wine64).
 *
 * Rust's standard library (1.78 and later) takes its random numbers from
 * ProcessPrng in bcryptprimitives.dll, which every supported Windows has and
 * Wine gained only in 9.x. Without it ferry.exe does not even start under
 * Wine 8. This DLL exports that one function over RtlGenRandom
 * (advapi32!SystemFunction036), which Wine 8 does have. It goes into the
 * throw-away Wine prefix of scripts/windows.sh only; it is never shipped:
 * real Windows has its own bcryptprimitives.dll.
 *
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll processprng.c
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* BOOL ProcessPrng(PBYTE pbData, SIZE_T cbData): always TRUE on Windows. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
