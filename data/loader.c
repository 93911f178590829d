// Shard directory access and the training batch loader (see data/loader.h).
#include "data/loader.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/json.h"

// ------------------------------------------------------------------------------------------
// Dataset

struct PawDataset {
    char *dir;
    int nshards;
    PawShard **shards;
    uint64_t *start;  // nshards + 1 prefix sums of example counts
    uint64_t tokens;
    char sha256[65];
    int max_tokens;
};

static int manifest_count(const cJSON *obj, const char *name, const char *path, uint64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!paw_json_is_int_in(v, 0, 9007199254740992.0))
        return paw_error("%s: field \"%s\" must be a non-negative integer (at most 2^53)", path, name);
    *out = (uint64_t)v->valuedouble;
    return 0;
}

PawDataset *paw_dataset_open(const char *dir) {
    char *mpath = paw_path_join(dir, "manifest.json");
    char *text = paw_read_file(mpath, NULL);
    if (!text) {
        free(mpath);
        return NULL;
    }
    cJSON *m = cJSON_Parse(text);
    free(text);
    PawDataset *ds = xcalloc(1, sizeof *ds);
    ds->dir = xstrdup(dir);
    int rc = 0;
    const cJSON *shards = NULL;
    if (!m || !cJSON_IsObject(m)) rc = paw_error("%s: not valid JSON", mpath);
    if (rc == 0) {
        const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(m, "format");
        shards = cJSON_GetObjectItemCaseSensitive(m, "shards");
        if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "paw-shards") != 0)
            rc = paw_error("%s: \"format\" must be \"paw-shards\"", mpath);
        else if (!cJSON_IsArray(shards))
            rc = paw_error("%s: \"shards\" must be an array", mpath);
    }
    if (rc == 0) {
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(m, "tokenizer");
        const cJSON *sha = tok ? cJSON_GetObjectItemCaseSensitive(tok, "sha256") : NULL;
        if (cJSON_IsString(sha)) snprintf(ds->sha256, sizeof ds->sha256, "%s", sha->valuestring);
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(m, "max_tokens");
        if (cJSON_IsNumber(mt)) ds->max_tokens = mt->valueint;
        int n = cJSON_GetArraySize(shards);
        ds->shards = xcalloc((size_t)n + 1, sizeof *ds->shards);
        ds->start = xcalloc((size_t)n + 1, sizeof *ds->start);
        const cJSON *s;
        cJSON_ArrayForEach(s, shards) {
            const cJSON *file = cJSON_GetObjectItemCaseSensitive(s, "file");
            uint64_t want = 0;
            if (!cJSON_IsString(file) || strchr(file->valuestring, '/')) {
                rc = paw_error("%s: shard %d: \"file\" must be a file name", mpath, ds->nshards);
                break;
            }
            if (manifest_count(s, "examples", mpath, &want) != 0) {
                rc = -1;
                break;
            }
            char *path = paw_path_join(dir, file->valuestring);
            PawShard *sh = paw_shard_open(path);
            if (sh && paw_shard_num_examples(sh) != want) {
                rc = paw_error("%s: %llu examples, the manifest says %llu (directory from two different builds?)", path,
                               (unsigned long long)paw_shard_num_examples(sh), (unsigned long long)want);
                paw_shard_close(sh);
                sh = NULL;
            }
            free(path);
            if (!sh) {
                rc = -1;
                break;
            }
            ds->shards[ds->nshards] = sh;
            ds->start[ds->nshards + 1] = ds->start[ds->nshards] + want;
            ds->tokens += paw_shard_num_tokens(sh);
            ds->nshards++;
        }
    }
    cJSON_Delete(m);
    free(mpath);
    if (rc != 0) {
        paw_dataset_close(ds);
        return NULL;
    }
    return ds;
}

void paw_dataset_close(PawDataset *ds) {
    if (!ds) return;
    for (int k = 0; k < ds->nshards; k++) paw_shard_close(ds->shards[k]);
    free(ds->shards);
    free(ds->start);
    free(ds->dir);
    free(ds);
}

uint64_t paw_dataset_size(const PawDataset *ds) { return ds->start[ds->nshards]; }
uint64_t paw_dataset_tokens(const PawDataset *ds) { return ds->tokens; }
int paw_dataset_num_shards(const PawDataset *ds) { return ds->nshards; }
PawShard *paw_dataset_shard(PawDataset *ds, int k) { return ds->shards[k]; }
const char *paw_dataset_tokenizer_sha256(const PawDataset *ds) { return ds->sha256; }
int paw_dataset_max_tokens(const PawDataset *ds) { return ds->max_tokens; }

static int shard_of(const PawDataset *ds, uint64_t i) {
    int lo = 0, hi = ds->nshards;  // last shard with start <= i
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (ds->start[mid] <= i) lo = mid;
        else hi = mid;
    }
    return lo;
}

void paw_dataset_lengths(const PawDataset *ds, uint64_t i, uint32_t len[PAW_SEG_COUNT]) {
    int k = shard_of(ds, i);
    paw_shard_lengths(ds->shards[k], i - ds->start[k], len);
}

int paw_dataset_get(PawDataset *ds, uint64_t i, PawExample *ex) {
    if (i >= paw_dataset_size(ds))
        return paw_error("%s: example %llu out of range (%llu examples)", ds->dir, (unsigned long long)i,
                         (unsigned long long)paw_dataset_size(ds));
    int k = shard_of(ds, i);
    return paw_shard_get(ds->shards[k], i - ds->start[k], ex);
}

int paw_dataset_verify(PawDataset *ds) {
    for (int k = 0; k < ds->nshards; k++)
        if (paw_shard_verify(ds->shards[k]) != 0) return -1;
    return 0;
}

// ------------------------------------------------------------------------------------------
// Loader

// splitmix64: small, fast, and fully determined by its 64-bit state.
static uint64_t mix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// Uniform in [0, n) without modulo bias.
static uint64_t below(uint64_t *state, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = mix64(state);
    while (x >= limit);
    return x % n;
}

typedef struct {
    uint64_t start, end;  // range in the epoch's order
} BatchRange;

struct PawLoader {
    PawDataset *ds;
    PawLoaderConfig cfg;
    uint64_t n;
    uint32_t *cost1;  // per example: compiler + interpreter tokens
    uint32_t *lc, *li;
    uint64_t fingerprint;
    // plan for plan_epoch
    int64_t plan_epoch;  // -1 before the first
    uint64_t *order;
    BatchRange *batches;
    uint64_t nbatches;
    PawLoaderPos pos;
};

void paw_loader_config_default(PawLoaderConfig *c) {
    memset(c, 0, sizeof *c);
    c->world_size = 1;
    c->token_budget = 16384;
    c->mode = PAW_BUDGET_PADDED;
}

int64_t paw_batch_cost(PawBudgetMode mode, const uint32_t (*len)[PAW_SEG_COUNT], int n) {
    int64_t sum = 0, maxc = 0, maxi = 0;
    for (int j = 0; j < n; j++) {
        int64_t c = paw_compiler_len(len[j]), i = paw_interp_len(len[j]);
        sum += c + i;
        if (c > maxc) maxc = c;
        if (i > maxi) maxi = i;
    }
    return mode == PAW_BUDGET_SUM ? sum : (int64_t)n * (maxc + maxi);
}

PawLoader *paw_loader_new(PawDataset *ds, const PawLoaderConfig *cfg) {
    if (cfg->world_size < 1 || cfg->rank < 0 || cfg->rank >= cfg->world_size) {
        paw_error("loader: rank %d is not in [0, world size %d)", cfg->rank, cfg->world_size);
        return NULL;
    }
    if (cfg->token_budget < 1 || cfg->max_examples < 0 || cfg->sort_window < 0 ||
        (cfg->mode != PAW_BUDGET_PADDED && cfg->mode != PAW_BUDGET_SUM)) {
        paw_error("loader: bad configuration (token budget %lld, max examples %d, sort window %d)",
                  (long long)cfg->token_budget, cfg->max_examples, cfg->sort_window);
        return NULL;
    }
    PawLoader *l = xcalloc(1, sizeof *l);
    l->ds = ds;
    l->cfg = *cfg;
    l->n = paw_dataset_size(ds);
    l->lc = xmalloc(sizeof *l->lc * (size_t)(l->n + 1));
    l->li = xmalloc(sizeof *l->li * (size_t)(l->n + 1));
    for (uint64_t i = 0; i < l->n; i++) {
        uint32_t len[PAW_SEG_COUNT];
        paw_dataset_lengths(ds, i, len);
        l->lc[i] = paw_compiler_len(len);
        l->li[i] = paw_interp_len(len);
        if ((int64_t)l->lc[i] + l->li[i] > cfg->token_budget) {
            paw_error("loader: example %llu has %u + %u tokens, more than the batch token budget %lld",
                      (unsigned long long)i, l->lc[i], l->li[i], (long long)cfg->token_budget);
            paw_loader_free(l);
            return NULL;
        }
    }
    uint64_t h = cfg->seed ^ 0x5041574c4f414452ULL;  // "PAWLOADR"
    uint64_t fields[] = {l->n, (uint64_t)cfg->world_size, (uint64_t)cfg->token_budget, (uint64_t)cfg->max_examples,
                         (uint64_t)cfg->mode, (uint64_t)cfg->sort_window};
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        h ^= fields[k];
        h = mix64(&h);
    }
    l->fingerprint = h;
    l->plan_epoch = -1;
    l->pos.fingerprint = h;
    return l;
}

void paw_loader_free(PawLoader *l) {
    if (!l) return;
    free(l->lc);
    free(l->li);
    free(l->order);
    free(l->batches);
    free(l);
}

typedef struct {
    uint32_t key;
    uint64_t index;
} Keyed;

static int cmp_keyed(const void *a, const void *b) {
    const Keyed *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

// The epoch's order and batches, the same on every rank.
static void make_plan(PawLoader *l, uint64_t epoch) {
    if (l->plan_epoch == (int64_t)epoch) return;
    uint64_t n = l->n;
    if (!l->order) {
        l->order = xmalloc(sizeof *l->order * (size_t)(n + 1));
        l->batches = xmalloc(sizeof *l->batches * (size_t)(n + 1));
    }
    uint64_t state = l->cfg.seed * 0x9e3779b97f4a7c15ULL ^ (epoch + 1) * 0xd1b54a32d192ed03ULL;
    for (uint64_t i = 0; i < n; i++) l->order[i] = i;
    for (uint64_t i = n; i > 1; i--) {  // Fisher-Yates
        uint64_t j = below(&state, i);
        uint64_t t = l->order[i - 1];
        l->order[i - 1] = l->order[j];
        l->order[j] = t;
    }
    uint64_t w = (uint64_t)l->cfg.sort_window;
    if (w > 1) {
        Keyed *tmp = xmalloc(sizeof *tmp * (size_t)w);
        for (uint64_t s = 0; s < n; s += w) {
            uint64_t m = n - s < w ? n - s : w;
            for (uint64_t k = 0; k < m; k++) {
                uint64_t i = l->order[s + k];
                tmp[k] = (Keyed){l->lc[i] + l->li[i], i};
            }
            qsort(tmp, (size_t)m, sizeof *tmp, cmp_keyed);
            for (uint64_t k = 0; k < m; k++) l->order[s + k] = tmp[k].index;
        }
        free(tmp);
    }
    // Greedy cut: extend the batch while the cost stays within budget.
    uint64_t nb = 0, start = 0;
    int64_t sum = 0, maxc = 0, maxi = 0;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t i = l->order[k];
        int64_t c = l->lc[i], t = l->li[i];
        int64_t cnt = (int64_t)(k - start) + 1;
        int64_t nsum = sum + c + t, nmaxc = c > maxc ? c : maxc, nmaxi = t > maxi ? t : maxi;
        int64_t cost = l->cfg.mode == PAW_BUDGET_SUM ? nsum : cnt * (nmaxc + nmaxi);
        int full = l->cfg.max_examples > 0 && cnt > l->cfg.max_examples;
        if (k > start && (cost > l->cfg.token_budget || full)) {
            l->batches[nb++] = (BatchRange){start, k};
            start = k;
            nsum = c + t, nmaxc = c, nmaxi = t;
        }
        sum = nsum, maxc = nmaxc, maxi = nmaxi;
    }
    if (n > start) l->batches[nb++] = (BatchRange){start, n};
    if (w > 1)  // sorted windows make batches of similar lengths: spread them over the epoch
        for (uint64_t b = nb; b > 1; b--) {
            uint64_t j = below(&state, b);
            BatchRange t = l->batches[b - 1];
            l->batches[b - 1] = l->batches[j];
            l->batches[j] = t;
        }
    l->nbatches = nb;
    l->plan_epoch = (int64_t)epoch;
}

uint64_t paw_loader_steps_in_epoch(PawLoader *l) {
    make_plan(l, l->pos.epoch);
    uint64_t ws = (uint64_t)l->cfg.world_size;
    return (l->nbatches + ws - 1) / ws;
}

PawLoaderPos paw_loader_tell(const PawLoader *l) { return l->pos; }

PawLoaderPos paw_loader_tell_next(PawLoader *l) {
    PawLoaderPos pos = l->pos;
    if (l->n > 0 && pos.step >= paw_loader_steps_in_epoch(l)) pos.epoch++, pos.step = 0;
    return pos;
}

int paw_loader_seek(PawLoader *l, PawLoaderPos pos) {
    if (pos.fingerprint != l->fingerprint)
        return paw_error("loader: the saved position belongs to another loader configuration or dataset "
                         "(seed, world size, budget, batch cap, sort window or example count differ)");
    l->pos = pos;
    make_plan(l, pos.epoch);
    uint64_t steps = paw_loader_steps_in_epoch(l);
    if (pos.step > steps)
        return paw_error("loader: saved step %llu is past the end of epoch %llu (%llu steps)", (unsigned long long)pos.step,
                         (unsigned long long)pos.epoch, (unsigned long long)steps);
    return 0;
}

static void batch_reserve(PawBatch *b, int n) {
    if (n <= b->cap) return;
    b->cap = n;
    b->index = xrealloc(b->index, sizeof *b->index * (size_t)n);
    b->ex = xrealloc(b->ex, sizeof *b->ex * (size_t)n);
}

void paw_batch_free(PawBatch *b) {
    free(b->index);
    free(b->ex);
    free(b->tokens);
    free(b->texts);
    memset(b, 0, sizeof *b);
}

// Copies the batch's examples into its own storage; views are fixed up once the storage is final.
static int load_batch(PawLoader *l, PawBatch *b) {
    size_t ntok = 0, ntext = 0;
    for (int j = 0; j < b->n; j++)
        for (int k = 0; k < PAW_SEG_COUNT; k++) ntok += b->ex[j].len[k];
    if (ntok > b->tokens_cap) {
        b->tokens = xrealloc(b->tokens, sizeof *b->tokens * ntok);
        b->tokens_cap = ntok;
    }
    size_t *text_at = xmalloc(sizeof *text_at * (size_t)(b->n + 1));
    size_t tok = 0;
    for (int j = 0; j < b->n; j++) {
        PawExample v;
        if (paw_dataset_get(l->ds, b->index[j], &v) != 0) {
            free(text_at);
            return -1;
        }
        for (int k = 0; k < PAW_SEG_COUNT; k++) {
            memcpy(b->tokens + tok, v.seg[k], sizeof *b->tokens * v.len[k]);
            tok += v.len[k];
        }
        size_t need = ntext + v.family_len + v.task_id_len + v.input_len + v.output_len + 4;
        if (need > b->texts_cap) {
            b->texts_cap = need * 2;
            b->texts = xrealloc(b->texts, b->texts_cap);
        }
        text_at[j] = ntext;
        const char *src[4] = {v.family, v.task_id, v.input, v.output};
        uint32_t len[4] = {v.family_len, v.task_id_len, v.input_len, v.output_len};
        for (int k = 0; k < 4; k++) {
            memcpy(b->texts + ntext, src[k], len[k] + 1);  // with its NUL
            ntext += len[k] + 1;
        }
        b->ex[j].family_len = v.family_len;
        b->ex[j].task_id_len = v.task_id_len;
        b->ex[j].input_len = v.input_len;
        b->ex[j].output_len = v.output_len;
    }
    tok = 0;
    for (int j = 0; j < b->n; j++) {
        PawExample *e = &b->ex[j];
        for (int k = 0; k < PAW_SEG_COUNT; k++) {
            e->seg[k] = b->tokens + tok;
            tok += e->len[k];
        }
        e->family = b->texts + text_at[j];
        e->task_id = e->family + e->family_len + 1;
        e->input = e->task_id + e->task_id_len + 1;
        e->output = e->input + e->input_len + 1;
    }
    free(text_at);
    return 0;
}

int paw_loader_next(PawLoader *l, PawBatch *b, int load_examples) {
    make_plan(l, l->pos.epoch);
    uint64_t ws = (uint64_t)l->cfg.world_size;
    while (l->pos.step >= (l->nbatches + ws - 1) / ws) {  // past the epoch's end (or an empty dataset)
        if (l->n == 0) return paw_error("loader: the dataset has no examples");
        l->pos.epoch++;
        l->pos.step = 0;
        make_plan(l, l->pos.epoch);
    }
    uint64_t g = l->pos.step * ws + (uint64_t)l->cfg.rank;
    b->epoch = l->pos.epoch;
    b->step = l->pos.step;
    b->n = 0;
    b->cost = 0;
    if (g < l->nbatches) {
        BatchRange r = l->batches[g];
        int n = (int)(r.end - r.start);
        batch_reserve(b, n);
        b->n = n;
        uint32_t(*len)[PAW_SEG_COUNT] = xmalloc(sizeof *len * (size_t)n);
        for (int j = 0; j < n; j++) {
            b->index[j] = l->order[r.start + (uint64_t)j];
            memset(&b->ex[j], 0, sizeof b->ex[j]);
            paw_dataset_lengths(l->ds, b->index[j], len[j]);
            memcpy(b->ex[j].len, len[j], sizeof len[j]);
        }
        b->cost = paw_batch_cost(l->cfg.mode, (const uint32_t(*)[PAW_SEG_COUNT])len, n);
        free(len);
    }
    l->pos.step++;
    if (load_examples && b->n > 0 && load_batch(l, b) != 0) return -1;
    return 0;
}
