// A stand-in libdcgm.so.4 for tests: the few DCGM calls tokenwatt makes
// through go-dcgm, answered from a configuration file instead of GPUs.
// dcgmstub.go builds it, once per DCGM version, with
//
//   -DSTUB_MINOR=0|5|6     the DCGM 4.x release whose symbols it exports
//   -DSTUB_VERSION="4.x.y" what dcgmVersionInfo reports
//   -DDCGM_API_EXPORT -fvisibility=hidden
//
// so that only the functions defined here that the headers mark
// DCGM_PUBLIC_API are exported: a function that release lacks is not
// defined, and calling it kills the process as the real library would.
//
// The configuration ($DCGMSTUB_CONFIG) is read by dcgmInit. Controls are
// files beside it, looked at on every call, so that a test can change a
// running process: see dcgmstub.go for their names and meaning.

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dcgm_agent.h"
#include "dcgm_fields.h"
#include "dcgm_structs.h"

#ifndef STUB_MINOR
#error "build with -DSTUB_MINOR=0, 5 or 6 and -DSTUB_VERSION"
#endif

#define MAX_GPUS 16
#define MAX_GROUPS 64
#define MAX_GROUP_FIELDS 64

struct gpu {
	char uuid[DCGM_MAX_STR_LENGTH];
	char name[DCGM_MAX_STR_LENGTH];
	double power_w; // constant draw; the energy counter integrates it from t0
	double limit_w; // enforced power limit; 0: not supported
	int energy;     // has an energy counter (fields 156 and 1611)
	int instant;    // answers field 157 (instantaneous power)
	int mig;        // MIG mode on
};

struct group {
	int used;
	unsigned gpus; // bit i: GPU i is in the group
};

struct field_group {
	int used, n;
	unsigned short ids[MAX_GROUP_FIELDS];
};

// Everything below is guarded by mu: go-dcgm calls from many threads.
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static struct {
	char dir[4096];   // where the configuration and the controls are
	char version[64]; // reported version; empty: STUB_VERSION
	long long t0_us;  // when every energy counter was zero
	int start_error;  // what dcgmStartEmbedded and dcgmConnect_v2 return
	int ngpus;
	struct gpu gpus[MAX_GPUS];
} cfg;

static int initialised; // dcgmInit ran and read the configuration
static int started;     // embedded DCGM started, or connected to a host engine
static int remote;      // started by dcgmConnect_v2
static dcgmHandle_t handle;
static struct group groups[MAX_GROUPS];
static struct field_group field_groups[MAX_GROUPS];
static unsigned char watched[MAX_GPUS][DCGM_FI_MAX_FIELDS];
// sample_from is when a watched field first has a value: as in DCGM, a
// newly watched field stays blank until its first update, one update
// interval after the watch, or sooner when dcgmUpdateAllFields forces
// one.
static long long sample_from[MAX_GPUS][DCGM_FI_MAX_FIELDS];

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

// control opens the control file name (printf-style) beside the
// configuration, or returns NULL when it does not exist.
static FILE *control(const char *mode, const char *format, int gpu)
{
	char name[64], path[sizeof cfg.dir + sizeof name];
	snprintf(name, sizeof name, format, gpu);
	snprintf(path, sizeof path, "%s/%s", cfg.dir, name);
	return fopen(path, mode);
}

static int control_exists(const char *format, int gpu)
{
	FILE *f = control("r", format, gpu);
	if (f)
		fclose(f);
	return f != NULL;
}

// consume removes a one-off control; only one caller succeeds.
static int consume(const char *format, int gpu)
{
	char name[64], path[sizeof cfg.dir + sizeof name];
	snprintf(name, sizeof name, format, gpu);
	snprintf(path, sizeof path, "%s/%s", cfg.dir, name);
	return unlink(path) == 0;
}

// read_config parses the configuration that dcgmstub.go writes: lines of
// tab-separated fields, "version V", "t0_us N", "start_error N" and
// "gpu UUID NAME POWER_W LIMIT_W ENERGY INSTANT MIG".
static int read_config(void)
{
	const char *path = getenv("DCGMSTUB_CONFIG");
	char line[1024], *slash;
	FILE *f;

	memset(&cfg, 0, sizeof cfg);
	if (!path || !(f = fopen(path, "r")))
		return -1;
	snprintf(cfg.dir, sizeof cfg.dir, "%s", path);
	if ((slash = strrchr(cfg.dir, '/')))
		*slash = '\0';
	else
		snprintf(cfg.dir, sizeof cfg.dir, ".");
	while (fgets(line, sizeof line, f)) {
		char *rest = line, *key, *v[7] = {0};
		line[strcspn(line, "\n")] = '\0';
		key = strsep(&rest, "\t");
		for (int i = 0; i < 7 && rest; i++)
			v[i] = strsep(&rest, "\t");
		if (!strcmp(key, "version") && v[0])
			snprintf(cfg.version, sizeof cfg.version, "%s", v[0]);
		else if (!strcmp(key, "t0_us") && v[0])
			cfg.t0_us = atoll(v[0]);
		else if (!strcmp(key, "start_error") && v[0])
			cfg.start_error = atoi(v[0]);
		else if (!strcmp(key, "gpu") && v[6] && cfg.ngpus < MAX_GPUS) {
			struct gpu *g = &cfg.gpus[cfg.ngpus++];
			snprintf(g->uuid, sizeof g->uuid, "%s", v[0]);
			snprintf(g->name, sizeof g->name, "%s", v[1]);
			g->power_w = atof(v[2]);
			g->limit_w = atof(v[3]);
			g->energy = atoi(v[4]);
			g->instant = atoi(v[5]);
			g->mig = atoi(v[6]);
		}
	}
	fclose(f);
	return 0;
}

static void forget_groups(void)
{
	memset(groups, 0, sizeof groups);
	memset(field_groups, 0, sizeof field_groups);
	memset(watched, 0, sizeof watched);
}

// check starts every call on a handle. A remote host engine is down while
// the control file "down" exists; its connection, groups and watches are
// then gone until dcgmConnect_v2 makes a new connection.
static dcgmReturn_t check(dcgmHandle_t h)
{
	if (!started)
		return DCGM_ST_UNINITIALIZED;
	if (remote && control_exists("down", 0)) {
		started = 0;
		forget_groups();
	}
	if (!started || h != handle)
		return DCGM_ST_CONNECTION_NOT_VALID;
	return DCGM_ST_OK;
}

// known: the field exists in this release (1611 is new in 4.6).
static int known(unsigned short id)
{
	if (id == DCGM_FI_DEV_GPU_ENERGY_JOULES_TOTAL)
		return STUB_MINOR >= 6;
	return id > 0 && id < DCGM_FI_MAX_FIELDS;
}

static char field_type(unsigned short id)
{
	switch (id) {
	case DCGM_FI_DEV_NAME:
	case DCGM_FI_DEV_UUID:
		return DCGM_FT_STRING;
	case DCGM_FI_DEV_POWER_USAGE:
	case DCGM_FI_DEV_POWER_USAGE_INSTANT:
	case DCGM_FI_DEV_POWER_MGMT_LIMIT:
	case DCGM_FI_DEV_ENFORCED_POWER_LIMIT:
	case DCGM_FI_DEV_GPU_ENERGY_JOULES_TOTAL:
		return DCGM_FT_DOUBLE;
	}
	return DCGM_FT_INT64;
}

// sampled: the field is a measurement that DCGM samples (energy, power),
// not a property of the GPU (its name, UUID, limits).
static int sampled(unsigned short id)
{
	switch (id) {
	case DCGM_FI_DEV_POWER_USAGE:
	case DCGM_FI_DEV_POWER_USAGE_INSTANT:
	case DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION:
	case DCGM_FI_DEV_GPU_ENERGY_JOULES_TOTAL:
		return 1;
	}
	return 0;
}

static void set_double(dcgmFieldValue_v1 *v, int ok, double x)
{
	v->value.dbl = ok ? x : DCGM_FP64_NOT_SUPPORTED;
}

// fill answers field id of GPU i: its value, or why there is none in
// the value's status (not watched, unknown) or in DCGM's sentinels (not
// supported; blank: energy and power not sampled yet).
static void fill(dcgmFieldValue_v1 *v, unsigned short id, int i, int blank, int glitch, long long now)
{
	const struct gpu *g = &cfg.gpus[i];
	double joules = g->power_w * (double)(now - cfg.t0_us) / 1e6;

	memset(v, 0, sizeof *v);
	v->version = dcgmFieldValue_version1;
	v->fieldId = id;
	v->fieldType = field_type(id);
	v->ts = now;
	if (!known(id))
		v->status = DCGM_ST_UNKNOWN_FIELD;
	else if (!watched[i][id])
		v->status = DCGM_ST_NOT_WATCHED;
	if (v->status != DCGM_ST_OK || (blank && sampled(id)) || now < sample_from[i][id]) {
		if (v->fieldType == DCGM_FT_STRING)
			snprintf(v->value.str, sizeof v->value.str, "%s", DCGM_STR_BLANK);
		else if (v->fieldType == DCGM_FT_DOUBLE)
			v->value.dbl = DCGM_FP64_BLANK;
		else
			v->value.i64 = DCGM_INT64_BLANK;
		return;
	}
	if (glitch)
		joules += 1e9; // no GPU draws that in an interval
	switch (id) {
	case DCGM_FI_DEV_NAME:
		snprintf(v->value.str, sizeof v->value.str, "%s", g->name);
		break;
	case DCGM_FI_DEV_UUID:
		snprintf(v->value.str, sizeof v->value.str, "%s", g->uuid);
		break;
	case DCGM_FI_DEV_MIG_MODE:
		v->value.i64 = g->mig;
		break;
	case DCGM_FI_DEV_POWER_USAGE:
		v->value.dbl = g->power_w;
		break;
	case DCGM_FI_DEV_POWER_USAGE_INSTANT:
		set_double(v, g->instant, g->power_w);
		break;
	case DCGM_FI_DEV_POWER_MGMT_LIMIT:
	case DCGM_FI_DEV_ENFORCED_POWER_LIMIT:
		set_double(v, g->limit_w > 0, g->limit_w);
		break;
	case DCGM_FI_DEV_GPU_ENERGY_JOULES_TOTAL:
		set_double(v, g->energy, joules);
		break;
	case DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION:
		v->value.i64 = g->energy ? (long long)(joules * 1000) : DCGM_INT64_NOT_SUPPORTED;
		break;
	default:
		v->value.i64 = DCGM_INT64_NOT_SUPPORTED;
	}
}

static int asks_energy(const unsigned short *ids, unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		if (ids[k] == DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION || ids[k] == DCGM_FI_DEV_GPU_ENERGY_JOULES_TOTAL)
			return 1;
	return 0;
}

// hang_ms is how long a read of GPU i hangs (the control file "hung-I"
// holds milliseconds).
static int hang_ms(int i)
{
	int ms = 0;
	FILE *f = control("r", "hung-%d", i);
	if (f) {
		if (fscanf(f, "%d", &ms) != 1)
			ms = 0;
		fclose(f);
	}
	return ms;
}

// hang holds a read of GPU i for as long as "hung-I" says, or until the
// file is removed.
static void hang(int i)
{
	long long until = now_us() + 1000LL * hang_ms(i);
	while (now_us() < until && hang_ms(i) > 0)
		usleep(10000);
}

dcgmReturn_t dcgmEntityGetLatestValues(dcgmHandle_t h, dcgm_field_entity_group_t entityGroup, int entityId,
                                       unsigned short fields[], unsigned int count, dcgmFieldValue_v1 values[])
{
	dcgmReturn_t r;

	if (entityGroup == DCGM_FE_GPU && entityId >= 0)
		hang(entityId); // outside the lock: the other GPUs answer meanwhile
	pthread_mutex_lock(&mu);
	if ((r = check(h)) == DCGM_ST_OK) {
		if (entityGroup != DCGM_FE_GPU || entityId < 0 || entityId >= cfg.ngpus || !fields || !values)
			r = DCGM_ST_BADPARAM;
		else if (control_exists("lost-%d", entityId))
			r = DCGM_ST_GPU_IS_LOST;
	}
	if (r == DCGM_ST_OK) {
		int blank = control_exists("blank-%d", entityId);
		int glitch = !blank && asks_energy(fields, count) && consume("glitch-%d", entityId);
		long long now = now_us();
		for (unsigned k = 0; k < count; k++)
			fill(&values[k], fields[k], entityId, blank, glitch, now);
	}
	pthread_mutex_unlock(&mu);
	return r;
}

dcgmReturn_t dcgmGetLatestValuesForFields(dcgmHandle_t h, int gpuId, unsigned short fields[], unsigned int count,
                                          dcgmFieldValue_v1 values[])
{
	return dcgmEntityGetLatestValues(h, DCGM_FE_GPU, gpuId, fields, count, values);
}

dcgmReturn_t dcgmInit(void)
{
	pthread_mutex_lock(&mu);
	int failed = read_config();
	initialised = !failed;
	pthread_mutex_unlock(&mu);
	return failed ? DCGM_ST_INIT_ERROR : DCGM_ST_OK;
}

dcgmReturn_t dcgmShutdown(void)
{
	pthread_mutex_lock(&mu);
	initialised = started = 0;
	forget_groups();
	pthread_mutex_unlock(&mu);
	return DCGM_ST_OK;
}

// start begins embedded DCGM or a connection to a host engine.
static dcgmReturn_t start(int is_remote, dcgmHandle_t *h)
{
	dcgmReturn_t r = DCGM_ST_OK;
	static dcgmHandle_t connections;

	pthread_mutex_lock(&mu);
	if (!initialised)
		r = DCGM_ST_UNINITIALIZED;
	else if (cfg.start_error)
		r = cfg.start_error;
	else if (is_remote && control_exists("down", 0))
		r = DCGM_ST_CONNECTION_NOT_VALID;
	if (r == DCGM_ST_OK) {
		forget_groups();
		started = 1;
		remote = is_remote;
		handle = *h = ++connections;
	}
	pthread_mutex_unlock(&mu);
	return r;
}

dcgmReturn_t dcgmStartEmbedded(dcgmOperationMode_t opMode, dcgmHandle_t *pDcgmHandle)
{
	(void)opMode;
	return start(0, pDcgmHandle);
}

dcgmReturn_t dcgmConnect_v2(const char *ipAddress, dcgmConnectV2Params_t *params, dcgmHandle_t *pDcgmHandle)
{
	if (!ipAddress || !params || params->version != dcgmConnectV2Params_version2)
		return DCGM_ST_BADPARAM;
	return start(1, pDcgmHandle);
}

static dcgmReturn_t stop(dcgmHandle_t h)
{
	pthread_mutex_lock(&mu);
	if (h == handle)
		started = 0;
	pthread_mutex_unlock(&mu);
	return DCGM_ST_OK;
}

dcgmReturn_t dcgmStopEmbedded(dcgmHandle_t pDcgmHandle)
{
	return stop(pDcgmHandle);
}

dcgmReturn_t dcgmDisconnect(dcgmHandle_t pDcgmHandle)
{
	return stop(pDcgmHandle);
}

dcgmReturn_t dcgmVersionInfo(dcgmVersionInfo_t *p)
{
	if (!p || p->version != dcgmVersionInfo_version2)
		return DCGM_ST_VER_MISMATCH;
	pthread_mutex_lock(&mu);
	snprintf(p->rawBuildInfoString, sizeof p->rawBuildInfoString,
	         "version:%s;arch:x86_64;buildid:1;commit:dcgmstub;branch:dcgmstub;buildtype:Release",
	         cfg.version[0] ? cfg.version : STUB_VERSION);
	pthread_mutex_unlock(&mu);
	return DCGM_ST_OK;
}

dcgmReturn_t dcgmGetAllSupportedDevices(dcgmHandle_t h, unsigned int gpuIdList[DCGM_MAX_NUM_DEVICES], int *count)
{
	pthread_mutex_lock(&mu);
	dcgmReturn_t r = check(h);
	if (r == DCGM_ST_OK) {
		for (int i = 0; i < cfg.ngpus; i++)
			gpuIdList[i] = (unsigned)i;
		*count = cfg.ngpus;
	}
	pthread_mutex_unlock(&mu);
	return r;
}

dcgmReturn_t dcgmGroupCreate(dcgmHandle_t h, dcgmGroupType_t type, const char *groupName, dcgmGpuGrp_t *pDcgmGrpId)
{
	(void)groupName;
	pthread_mutex_lock(&mu);
	dcgmReturn_t r = check(h);
	if (r == DCGM_ST_OK && type != DCGM_GROUP_EMPTY)
		r = DCGM_ST_NOT_SUPPORTED;
	if (r == DCGM_ST_OK) {
		r = DCGM_ST_MAX_LIMIT;
		for (int k = 0; k < MAX_GROUPS; k++) {
			if (!groups[k].used) {
				groups[k] = (struct group){.used = 1};
				*pDcgmGrpId = (dcgmGpuGrp_t)(k + 1);
				r = DCGM_ST_OK;
				break;
			}
		}
	}
	pthread_mutex_unlock(&mu);
	return r;
}

// group_at is the group a handle names, or NULL.
static struct group *group_at(dcgmGpuGrp_t id)
{
	if (id < 1 || id > MAX_GROUPS || !groups[id - 1].used)
		return NULL;
	return &groups[id - 1];
}

static struct field_group *field_group_at(dcgmFieldGrp_t id)
{
	if (id < 1 || id > MAX_GROUPS || !field_groups[id - 1].used)
		return NULL;
	return &field_groups[id - 1];
}

dcgmReturn_t dcgmGroupAddDevice(dcgmHandle_t h, dcgmGpuGrp_t groupId, unsigned int gpuId)
{
	pthread_mutex_lock(&mu);
	dcgmReturn_t r = check(h);
	struct group *g = group_at(groupId);
	if (r == DCGM_ST_OK && (!g || gpuId >= (unsigned)cfg.ngpus))
		r = DCGM_ST_BADPARAM;
	if (r == DCGM_ST_OK)
		g->gpus |= 1u << gpuId;
	pthread_mutex_unlock(&mu);
	return r;
}

dcgmReturn_t dcgmGroupDestroy(dcgmHandle_t h, dcgmGpuGrp_t groupId)
{
	pthread_mutex_lock(&mu);
	dcgmReturn_t r = check(h);
	struct group *g = group_at(groupId);
	if (r == DCGM_ST_OK && !g)
		r = DCGM_ST_NOT_CONFIGURED;
	if (r == DCGM_ST_OK)
		g->used = 0;
	pthread_mutex_unlock(&mu);
	return r;
}

dcgmReturn_t dcgmFieldGroupCreate(dcgmHandle_t h, int numFieldIds, const unsigned short *fieldIds,
                                  const char *fieldGroupName, dcgmFieldGrp_t *dcgmFieldGroupId)
{
	(void)fieldGroupName;
	pthread_mutex_lock(&mu);
	dcgmReturn_t r = check(h);
	if (r == DCGM_ST_OK && (numFieldIds < 1 || numFieldIds > MAX_GROUP_FIELDS))
		r = DCGM_ST_BADPARAM;
	for (int k = 0; r == DCGM_ST_OK && k < numFieldIds; k++)
		if (!known(fieldIds[k]))
			r = DCGM_ST_UNKNOWN_FIELD;
	if (r == DCGM_ST_OK) {
		r = DCGM_ST_MAX_LIMIT;
		for (int k = 0; k < MAX_GROUPS; k++) {
			if (!field_groups[k].used) {
				field_groups[k] = (struct field_group){.used = 1, .n = numFieldIds};
				memcpy(field_groups[k].ids, fieldIds, sizeof *fieldIds * numFieldIds);
				*dcgmFieldGroupId = (dcgmFieldGrp_t)(k + 1);
				r = DCGM_ST_OK;
				break;
			}
		}
	}
	pthread_mutex_unlock(&mu);
	return r;
}

dcgmReturn_t dcgmFieldGroupDestroy(dcgmHandle_t h, dcgmFieldGrp_t dcgmFieldGroupId)
{
	pthread_mutex_lock(&mu);
	dcgmReturn_t r = check(h);
	struct field_group *fg = field_group_at(dcgmFieldGroupId);
	if (r == DCGM_ST_OK && !fg)
		r = DCGM_ST_NOT_CONFIGURED;
	if (r == DCGM_ST_OK)
		fg->used = 0;
	pthread_mutex_unlock(&mu);
	return r;
}

// set_watch marks (or unmarks) every field of a field group watched on
// every GPU of a group.
static dcgmReturn_t set_watch(dcgmHandle_t h, dcgmGpuGrp_t groupId, dcgmFieldGrp_t fieldGroupId, unsigned char on,
                              long long updateFreq)
{
	pthread_mutex_lock(&mu);
	dcgmReturn_t r = check(h);
	struct group *g = group_at(groupId);
	struct field_group *fg = field_group_at(fieldGroupId);
	long long now = now_us();
	if (r == DCGM_ST_OK && (!g || !fg))
		r = DCGM_ST_NOT_CONFIGURED;
	for (int i = 0; r == DCGM_ST_OK && i < cfg.ngpus; i++)
		for (int k = 0; (g->gpus >> i & 1) && k < fg->n; k++) {
			unsigned short id = fg->ids[k];
			if (on && !watched[i][id])
				sample_from[i][id] = now + updateFreq;
			watched[i][id] = on;
		}
	pthread_mutex_unlock(&mu);
	return r;
}

dcgmReturn_t dcgmWatchFields(dcgmHandle_t h, dcgmGpuGrp_t groupId, dcgmFieldGrp_t fieldGroupId, long long updateFreq,
                             double maxKeepAge, int maxKeepSamples)
{
	if (updateFreq <= 0 || maxKeepAge < 0 || maxKeepSamples < 0)
		return DCGM_ST_BADPARAM;
	return set_watch(h, groupId, fieldGroupId, 1, updateFreq);
}

dcgmReturn_t dcgmUnwatchFields(dcgmHandle_t h, dcgmGpuGrp_t groupId, dcgmFieldGrp_t fieldGroupId)
{
	return set_watch(h, groupId, fieldGroupId, 0, 0);
}

// dcgmUpdateAllFields samples every watched field now; waitForUpdate
// makes no difference here, since the stand-in samples at once.
dcgmReturn_t dcgmUpdateAllFields(dcgmHandle_t h, int waitForUpdate)
{
	(void)waitForUpdate;
	pthread_mutex_lock(&mu);
	dcgmReturn_t r = check(h);
	long long now = now_us();
	for (int i = 0; r == DCGM_ST_OK && i < cfg.ngpus; i++)
		for (int id = 0; id < DCGM_FI_MAX_FIELDS; id++)
			if (watched[i][id] && sample_from[i][id] > now)
				sample_from[i][id] = now;
	pthread_mutex_unlock(&mu);
	return r;
}

dcgm_field_meta_p DcgmFieldGetById(unsigned short fieldId)
{
	static dcgm_field_meta_t meta[DCGM_FI_MAX_FIELDS];
	dcgm_field_meta_t *m = NULL;

	pthread_mutex_lock(&mu);
	if (known(fieldId)) {
		m = &meta[fieldId];
		m->fieldId = fieldId;
		m->fieldType = field_type(fieldId);
		m->size = m->fieldType == DCGM_FT_STRING ? 0 : 8;
		snprintf(m->tag, sizeof m->tag, "field_%u", fieldId);
		m->scope = DCGM_FS_DEVICE;
		m->entityLevel = DCGM_FE_GPU;
	}
	pthread_mutex_unlock(&mu);
	return m;
}

const char *errorString(dcgmReturn_t result)
{
	switch ((int)result) {
	case DCGM_ST_OK:
		return "Success";
	case DCGM_ST_BADPARAM:
		return "Bad parameter passed to function";
	case DCGM_ST_NOT_CONFIGURED:
		return "Setting not configured";
	case DCGM_ST_NOT_SUPPORTED:
		return "This request is serviced by a module of DCGM that is not currently loaded";
	case DCGM_ST_INIT_ERROR:
		return "DCGM Initialization Error";
	case DCGM_ST_UNINITIALIZED:
		return "Object is in undefined state";
	case DCGM_ST_VER_MISMATCH:
		return "Version mismatch between received and understood API";
	case DCGM_ST_UNKNOWN_FIELD:
		return "Unknown field id";
	case DCGM_ST_GPU_IS_LOST:
		return "GPU is lost";
	case DCGM_ST_CONNECTION_NOT_VALID:
		return "Host engine connection invalid/disconnected";
	case DCGM_ST_MAX_LIMIT:
		return "Max limit reached for the object";
	case DCGM_ST_NVML_NOT_LOADED:
		return "Cannot perform operation because NVML isn't loaded";
	}
	return "Unknown error";
}

// dcgmGetDeviceAttributes (in every DCGM 4.x) is the first call of
// go-dcgm's GetDeviceInfo, which tokenwatt no longer makes: with it, the
// stand-in shows where GetDeviceInfo dies on 4.0.
dcgmReturn_t dcgmGetDeviceAttributes(dcgmHandle_t h, unsigned int gpuId, dcgmDeviceAttributes_t *attr)
{
	pthread_mutex_lock(&mu);
	dcgmReturn_t r = check(h);
	if (r == DCGM_ST_OK && (gpuId >= (unsigned)cfg.ngpus || attr->version != dcgmDeviceAttributes_version3))
		r = DCGM_ST_BADPARAM;
	if (r == DCGM_ST_OK) {
		const struct gpu *g = &cfg.gpus[gpuId];
		unsigned int version = attr->version;
		memset(attr, 0, sizeof *attr);
		attr->version = version;
		snprintf(attr->identifiers.uuid, sizeof attr->identifiers.uuid, "%s", g->uuid);
		snprintf(attr->identifiers.deviceName, sizeof attr->identifiers.deviceName, "%s", g->name);
		snprintf(attr->identifiers.brandName, sizeof attr->identifiers.brandName, "NVIDIA");
		attr->powerLimits.defaultPowerLimit = (unsigned)g->limit_w;
	}
	pthread_mutex_unlock(&mu);
	return r;
}

#if STUB_MINOR >= 5
// DCGM 4.5 added dcgmGetGpuStatus, which go-dcgm's GetDeviceInfo calls
// after dcgmGetDeviceAttributes: on 4.0 it kills the process there. Real
// 4.0 has dcgmGetDeviceTopology, which GetDeviceInfo calls next, with an
// older struct; the 4.0 stand-in leaves it out (tokenwatt never calls it).

dcgmReturn_t dcgmGetGpuStatus(dcgmHandle_t h, unsigned int gpuId, DcgmEntityStatus_t *status)
{
	pthread_mutex_lock(&mu);
	dcgmReturn_t r = check(h);
	if (r == DCGM_ST_OK && gpuId >= (unsigned)cfg.ngpus)
		r = DCGM_ST_BADPARAM;
	if (r == DCGM_ST_OK)
		*status = control_exists("lost-%d", (int)gpuId) ? DcgmEntityStatusLost : DcgmEntityStatusOk;
	pthread_mutex_unlock(&mu);
	return r;
}

dcgmReturn_t dcgmGetDeviceTopology(dcgmHandle_t h, unsigned int gpuId, dcgmDeviceTopology_v2 *topology)
{
	(void)gpuId;
	(void)topology;
	pthread_mutex_lock(&mu);
	dcgmReturn_t r = check(h);
	pthread_mutex_unlock(&mu);
	return r == DCGM_ST_OK ? DCGM_ST_NOT_SUPPORTED : r;
}
#endif
