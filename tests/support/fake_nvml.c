/* A stand-in for libnvidia-ml.so.1 (and libcuda's cuDriverGetVersion), built by tests/fakes.py
 * with -D values, so envsetup's ctypes code runs for real on a machine without a driver.
 * Only the entry points envsetup calls exist. With -DMIG=1 every GPU has two MIG instances;
 * -DINIT_FAULT and -DREPORTED_COUNT make a broken driver. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    unsigned long long total, free, used;
} mem_t;

typedef struct {
    char legacy[16];
    unsigned domain, bus, device, id, sub;
    char bus_id[32];
} pci_t;

static const char *names[] = {GPU_NAMES};
static const int majors[] = {CC_MAJORS};
static const int minors[] = {CC_MINORS};

/* GPU handles are 1..COUNT; MIG instance handles are 100 + slot (two instances of 40 GiB). */
static int ix(void *handle) { return (int)(uintptr_t)handle - 1; }
static int is_mig(void *handle) { return (uintptr_t)handle >= 100; }

/* INIT_FAULT: 0 none, 1 segfault, 2 abort, 3 never return (a wedged GPU); a broken driver. */
int nvmlInit_v2(void) {
    if (INIT_FAULT == 1) raise(SIGSEGV);
    if (INIT_FAULT == 2) abort();
    if (INIT_FAULT == 3)
        for (;;) pause();
    return INIT_RC;
}
int shutdowns = 0; /* read by tests through ctypes: did envsetup shut NVML down? */
int nvmlShutdown(void) {
    shutdowns++;
    return 0;
}

const char *nvmlErrorString(int rc) {
    if (rc == 9) return "Driver Not Loaded";
    if (rc == 18) return "RM has detected an NVML/RM version mismatch.";
    return "Unknown Error";
}

int nvmlSystemGetDriverVersion(char *out, unsigned size) {
    snprintf(out, size, "%s", DRIVER);
    return 0;
}

int nvmlSystemGetCudaDriverVersion_v2(int *version) {
    *version = CUDA;
    return 0;
}

int nvmlDeviceGetCount_v2(unsigned *count) {
    *count = REPORTED_COUNT; /* COUNT, or a bogus count such as 0xFFFFFFFF */
    return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned index, void **handle) {
    if (index >= COUNT) return 2;
    *handle = (void *)(uintptr_t)(index + 1);
    return 0;
}

int nvmlDeviceGetName(void *handle, char *out, unsigned size) {
    if (is_mig(handle)) {
        snprintf(out, size, "%s MIG 3g.40gb", names[0]);
        return 0;
    }
    snprintf(out, size, "%s", names[ix(handle)]);
    return 0;
}

int nvmlDeviceGetUUID(void *handle, char *out, unsigned size) {
    if (is_mig(handle))
        snprintf(out, size, "MIG-00000000-0000-0000-0000-%012d", ix(handle) - 99);
    else
        snprintf(out, size, "GPU-00000000-0000-0000-0000-%012d", ix(handle));
    return 0;
}

int nvmlDeviceGetMemoryInfo(void *handle, mem_t *memory) {
    memory->total = is_mig(handle) ? 40ULL << 30 : MEMORY;
    memory->free = memory->total;
    memory->used = 0;
    return 0;
}

int nvmlDeviceGetCudaComputeCapability(void *handle, int *major, int *minor) {
    *major = majors[ix(handle)];
    *minor = minors[ix(handle)];
    return 0;
}

int nvmlDeviceGetPciInfo_v3(void *handle, pci_t *pci) {
    memset(pci, 0, sizeof *pci);
    pci->bus = 6 + ix(handle);
    snprintf(pci->bus_id, sizeof pci->bus_id, "00000000:%02X:00.0", pci->bus);
    return 0;
}

int nvmlDeviceGetMigMode(void *handle, unsigned *current, unsigned *pending) {
    if (!MIG) return 3; /* NVML_ERROR_NOT_SUPPORTED: a GPU without MIG */
    *current = *pending = 1;
    return 0;
}

int nvmlDeviceGetMaxMigDeviceCount(void *handle, unsigned *count) {
    *count = 7;
    return 0;
}

int nvmlDeviceGetMigDeviceHandleByIndex(void *handle, unsigned slot, void **mig) {
    if (slot >= 2) return 6; /* NVML_ERROR_NOT_FOUND: an empty slot */
    *mig = (void *)(uintptr_t)(100 + slot);
    return 0;
}

int cuDriverGetVersion(int *version) {
    *version = CUDA;
    return 0;
}
