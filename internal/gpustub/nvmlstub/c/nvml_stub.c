/*
 * A stand-in libnvidia-ml.so.1 for tests: the NVML functions that the
 * energy package's nvml source calls through go-nvml, answering from the
 * configuration file that package nvmlstub writes ($NVMLSTUB_CONFIG):
 *
 *   t0 <unix seconds>
 *   gpu <uuid> <power W> <limit W> <counter 0|1> <instant 0|1> <procs> <mig 0|1> <name...>
 *   mig <uuid> <procs>          (a MIG device of the gpu line above)
 *
 * A GPU's energy counter advances at its power from t0. Files beside the
 * configuration change a GPU while a process runs (N is the GPU's index):
 *
 *   gpuN.lost          every call on the GPU fails with GPU_IS_LOST
 *   gpuN.hang          <ms>: every call on the GPU first sleeps that long
 *   gpuN.glitch        the next energy read is absurd (the file is removed)
 *   gpuN.energy_error  <nvmlReturn_t>: energy reads fail with it
 *   gpuN.power         <t> <energy mJ at t> <power W from t> <power W before t>
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nvml.h"

#define MAX_GPUS 16
#define MAX_MIGS 7

struct nvmlDevice_st {
	int gpu;
	int mig; /* the MIG device's index, -1 for the physical GPU */
};

struct gpu {
	char uuid[96], name[96];
	double power_w, limit_w;
	int counter, instant, procs, mig_mode;
	int nmig;
	char mig_uuid[MAX_MIGS][96];
	int mig_procs[MAX_MIGS];
	struct nvmlDevice_st dev, mig_dev[MAX_MIGS];
};

static struct gpu gpus[MAX_GPUS];
static int ngpus, inits;
static double t0;
static char dir[4096];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int load(const char *path)
{
	char line[512];
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	snprintf(line, sizeof line, "%s", path);
	snprintf(dir, sizeof dir, "%s", dirname(line));
	ngpus = 0;
	while (fgets(line, sizeof line, f)) {
		struct gpu *g = &gpus[ngpus];
		int n = 0;
		line[strcspn(line, "\n")] = 0;
		if (sscanf(line, "t0 %lf", &t0) == 1)
			continue;
		if (ngpus < MAX_GPUS &&
		    sscanf(line, "gpu %95s %lf %lf %d %d %d %d %n", g->uuid, &g->power_w, &g->limit_w,
			   &g->counter, &g->instant, &g->procs, &g->mig_mode, &n) == 7 && n > 0) {
			snprintf(g->name, sizeof g->name, "%s", line + n);
			g->dev = (struct nvmlDevice_st){ngpus, -1};
			g->nmig = 0;
			ngpus++;
			continue;
		}
		if (ngpus == 0)
			continue;
		g = &gpus[ngpus - 1];
		if (g->nmig < MAX_MIGS &&
		    sscanf(line, "mig %95s %d", g->mig_uuid[g->nmig], &g->mig_procs[g->nmig]) == 2) {
			g->mig_dev[g->nmig] = (struct nvmlDevice_st){ngpus - 1, g->nmig};
			g->nmig++;
		}
	}
	fclose(f);
	return 0;
}

/*
 * control reads the file gpuN.<name> beside the configuration: -1 when it
 * does not exist, else how many of up to n numbers it holds. With take it
 * is removed once read: a one-off fault.
 */
static int control(int gpu, const char *name, double *v, int n, int take)
{
	char path[4200];
	int got = 0;
	snprintf(path, sizeof path, "%s/gpu%d.%s", dir, gpu, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (got < n && fscanf(f, "%lf", &v[got]) == 1)
		got++;
	fclose(f);
	if (take)
		unlink(path);
	return got;
}

/* A GPU's draw: w watts from time t, when its counter read mj; before t, before watts. */
struct draw {
	double t, mj, w, before;
};

static struct draw draw(int i)
{
	double o[4];
	if (control(i, "power", o, 4, 0) == 4)
		return (struct draw){o[0], o[1], o[2], o[3]};
	return (struct draw){t0, 0, gpus[i].power_w, gpus[i].power_w};
}

/* energy_mj is the energy counter at time t, millijoules. */
static double energy_mj(struct draw d, double t)
{
	return d.mj + (t >= d.t ? d.w : d.before) * (t - d.t) * 1000;
}

/* hanging counts the calls held by a "hang" control right now. */
static int hanging;

/* enter checks a device handle and applies its GPU's faults. */
static nvmlReturn_t enter(const struct nvmlDevice_st *d)
{
	double ms;
	if (inits == 0)
		return NVML_ERROR_UNINITIALIZED;
	if (!d || d->gpu < 0 || d->gpu >= ngpus)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (control(d->gpu, "hang", &ms, 1, 0) == 1) {
		__atomic_add_fetch(&hanging, 1, __ATOMIC_SEQ_CST);
		usleep((useconds_t)(ms * 1000));
		__atomic_sub_fetch(&hanging, 1, __ATOMIC_SEQ_CST);
	}
	if (control(d->gpu, "lost", NULL, 0, 0) >= 0)
		return NVML_ERROR_GPU_IS_LOST;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void)
{
	const char *path = getenv("NVMLSTUB_CONFIG");
	if (inits == 0 && (!path || load(path) != 0))
		return NVML_ERROR_DRIVER_NOT_LOADED;
	inits++;
	return NVML_SUCCESS;
}

/* nvmlShutdown appends, when NVML is shut down for good, how many calls
   were hanging then to the file "shutdowns" beside the configuration: a
   test tells a shutdown that waited for its calls from one that did not. */
nvmlReturn_t nvmlShutdown(void)
{
	if (inits == 0)
		return NVML_ERROR_UNINITIALIZED;
	if (--inits == 0) {
		char path[4200];
		snprintf(path, sizeof path, "%s/shutdowns", dir);
		FILE *f = fopen(path, "a");
		if (f) {
			fprintf(f, "%d\n", __atomic_load_n(&hanging, __ATOMIC_SEQ_CST));
			fclose(f);
		}
	}
	return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t r)
{
	switch (r) {
	case NVML_SUCCESS: return "Success";
	case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
	case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
	case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
	case NVML_ERROR_NOT_FOUND: return "Not Found";
	case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
	case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
	case NVML_ERROR_TIMEOUT: return "Timeout";
	case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
	default: return "Unknown Error";
	}
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
	if (inits == 0)
		return NVML_ERROR_UNINITIALIZED;
	*count = ngpus;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
	if (inits == 0)
		return NVML_ERROR_UNINITIALIZED;
	if (index >= (unsigned)ngpus)
		return NVML_ERROR_INVALID_ARGUMENT;
	*device = (nvmlDevice_t){&gpus[index].dev};
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
	if (inits == 0)
		return NVML_ERROR_UNINITIALIZED;
	for (int i = 0; i < ngpus; i++) {
		if (strcmp(gpus[i].uuid, uuid) == 0) {
			*device = (nvmlDevice_t){&gpus[i].dev};
			return NVML_SUCCESS;
		}
		for (int m = 0; m < gpus[i].nmig; m++) {
			if (strcmp(gpus[i].mig_uuid[m], uuid) == 0) {
				*device = (nvmlDevice_t){&gpus[i].mig_dev[m]};
				return NVML_SUCCESS;
			}
		}
	}
	return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t h, char *uuid, unsigned int length)
{
	const struct nvmlDevice_st *d = h.handle;
	nvmlReturn_t r = enter(d);
	const char *s;
	if (r != NVML_SUCCESS)
		return r;
	s = d->mig < 0 ? gpus[d->gpu].uuid : gpus[d->gpu].mig_uuid[d->mig];
	if (strlen(s) >= length)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	strcpy(uuid, s);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t h, char *name, unsigned int length)
{
	const struct nvmlDevice_st *d = h.handle;
	nvmlReturn_t r = enter(d);
	if (r != NVML_SUCCESS)
		return r;
	if (strlen(gpus[d->gpu].name) >= length)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	strcpy(name, gpus[d->gpu].name);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t h, unsigned long long *energy)
{
	const struct nvmlDevice_st *d = h.handle;
	nvmlReturn_t r = enter(d);
	double code, mj;
	if (r != NVML_SUCCESS)
		return r;
	if (d->mig >= 0 || !gpus[d->gpu].counter)
		return NVML_ERROR_NOT_SUPPORTED;
	if (control(d->gpu, "energy_error", &code, 1, 0) == 1)
		return (nvmlReturn_t)code;
	mj = energy_mj(draw(d->gpu), now());
	if (control(d->gpu, "glitch", NULL, 0, 1) >= 0)
		mj += 1e12; /* a billion joules in one interval */
	*energy = mj > 0 ? (unsigned long long)mj : 0;
	return NVML_SUCCESS;
}

/* GetPowerUsage is, as on Ampere and later, the mean over the last second. */
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t h, unsigned int *power)
{
	const struct nvmlDevice_st *d = h.handle;
	nvmlReturn_t r = enter(d);
	double t = now();
	struct draw dr;
	if (r != NVML_SUCCESS)
		return r;
	if (d->mig >= 0)
		return NVML_ERROR_NOT_SUPPORTED;
	dr = draw(d->gpu);
	*power = (unsigned int)(energy_mj(dr, t) - energy_mj(dr, t - 1) + 0.5);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t h, unsigned int *limit)
{
	const struct nvmlDevice_st *d = h.handle;
	nvmlReturn_t r = enter(d);
	if (r != NVML_SUCCESS)
		return r;
	if (d->mig >= 0)
		return NVML_ERROR_NOT_SUPPORTED;
	*limit = (unsigned int)(gpus[d->gpu].limit_w * 1000 + 0.5);
	return NVML_SUCCESS;
}

/* Of the field values, only NVML_FI_DEV_POWER_INSTANT, where the GPU has it. */
nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t h, int count, nvmlFieldValue_t *values)
{
	const struct nvmlDevice_st *d = h.handle;
	nvmlReturn_t r = enter(d);
	if (r != NVML_SUCCESS)
		return r;
	for (int k = 0; k < count; k++) {
		nvmlFieldValue_t *v = &values[k];
		v->timestamp = (long long)(now() * 1e6);
		v->latencyUsec = 0;
		v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
		if (v->fieldId == NVML_FI_DEV_POWER_INSTANT && d->mig < 0 && gpus[d->gpu].instant) {
			v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
			v->value.uiVal = (unsigned int)(draw(d->gpu).w * 1000 + 0.5);
			v->nvmlReturn = NVML_SUCCESS;
		}
	}
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t h, unsigned int *count, nvmlProcessInfo_t *infos)
{
	const struct nvmlDevice_st *d = h.handle;
	nvmlReturn_t r = enter(d);
	unsigned int n;
	if (r != NVML_SUCCESS)
		return r;
	n = d->mig < 0 ? gpus[d->gpu].procs : gpus[d->gpu].mig_procs[d->mig];
	if (*count < n) {
		*count = n;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	for (unsigned int k = 0; k < n; k++) {
		infos[k] = (nvmlProcessInfo_t){
			.pid = 1000 * (d->gpu + 1) + k,
			.usedGpuMemory = 1ULL << 30,
			.gpuInstanceId = d->mig < 0 ? 0xFFFFFFFF : (unsigned)d->mig,
			.computeInstanceId = d->mig < 0 ? 0xFFFFFFFF : 0,
		};
	}
	*count = n;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t h, unsigned int *current, unsigned int *pending)
{
	const struct nvmlDevice_st *d = h.handle;
	nvmlReturn_t r = enter(d);
	if (r != NVML_SUCCESS)
		return r;
	*current = *pending = gpus[d->gpu].mig_mode ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t h, unsigned int *count)
{
	const struct nvmlDevice_st *d = h.handle;
	nvmlReturn_t r = enter(d);
	if (r != NVML_SUCCESS)
		return r;
	*count = gpus[d->gpu].mig_mode ? MAX_MIGS : 0;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t h, unsigned int index, nvmlDevice_t *mig)
{
	const struct nvmlDevice_st *d = h.handle;
	nvmlReturn_t r = enter(d);
	if (r != NVML_SUCCESS)
		return r;
	if (d->mig >= 0 || !gpus[d->gpu].mig_mode)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (index >= (unsigned)gpus[d->gpu].nmig)
		return NVML_ERROR_NOT_FOUND;
	*mig = (nvmlDevice_t){&gpus[d->gpu].mig_dev[index]};
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t h, nvmlDevice_t *device)
{
	const struct nvmlDevice_st *mig = h.handle;
	nvmlReturn_t r = enter(mig);
	if (r != NVML_SUCCESS)
		return r;
	if (mig->mig < 0)
		return NVML_ERROR_INVALID_ARGUMENT;
	*device = (nvmlDevice_t){&gpus[mig->gpu].dev};
	return NVML_SUCCESS;
}
