/* test_checkpoint: checkpoints round-trip exactly; a checkpoint of other settings is refused
 * naming the key; wrong magic, version, size, truncated and corrupted files are refused; nothing
 * is changed on a refusal; the best parameters are kept when given; writes leave no temporary behind. */
#include "checkpoint.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...) do { \
    if (!(cond)) { printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); failures++; } \
    else { printf("ok   "); printf(__VA_ARGS__); printf("\n"); } \
} while (0)

static char dir[] = "/tmp/test_checkpoint_XXXXXX";
enum { N = 1000 };

static void patch(const char *path, long at, const void *bytes, size_t n) {
    FILE *f = fopen(path, "r+b");
    fseek(f, at, SEEK_SET);
    fwrite(bytes, 1, n, f);
    fclose(f);
}

static void copy(const char *from, const char *to, long limit) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int c;
    long k = 0;
    while ((limit < 0 || k < limit) && (c = fgetc(a)) != EOF) { fputc(c, b); k++; }
    fclose(a);
    fclose(b);
}

static int n_files(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

int main(void) {
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    char path[128], other[128];
    snprintf(path, sizeof path, "%s/run.ckpt", dir);
    snprintf(other, sizeof other, "%s/other.ckpt", dir);
    const char *cfg = "{\"batch\":8,\"lr\":0.00020000000949949026,\"mode\":\"lora\",\"seed\":1}";
    sm_adamw_config ac = {0.9f, 0.999f, 1e-8f};
    sm_adamw *opt = sm_adamw_new(N, &ac, NULL), *back = sm_adamw_new(N, &ac, NULL);
    float params[N], loaded[N], sentinel[N], best[N], got_best[N];
    for (int i = 0; i < N; i++) {
        params[i] = sinf((float)i) * 1e-2f;
        opt->m[i] = cosf((float)i) * 1e-3f;
        opt->v[i] = (float)i * 1e-9f;
        sentinel[i] = -7.0f;
        best[i] = (float)i;
    }
    params[5] = NAN; /* any bit pattern survives */
    opt->t = 123;
    sm_ckpt_state st = {.step = 123, .cursor = {4, 17}, .train_rng = 999, .best_val = 0.25, .bad_evals = 2,
                        .tokens_seen = 1u << 20, .elapsed_s = 12.5};
    sm_error err = {0};
    int rc = sm_checkpoint_save(path, cfg, &st, params, opt, best, &err);
    CHECK(rc == 0, "save: %s", rc ? err.msg : "written");
    CHECK(n_files() == 1, "no temporary left behind");
    rc = sm_checkpoint_save(path, cfg, &st, params, opt, best, &err);
    CHECK(rc == 0 && n_files() == 1, "a second save replaces the file");

    sm_ckpt_state got = {0};
    rc = sm_checkpoint_load(path, cfg, &got, loaded, back, got_best, &err);
    CHECK(rc == 0, "load: %s", rc ? err.msg : "read");
    CHECK(!memcmp(best, got_best, sizeof best), "the best parameters round-trip");
    CHECK(!memcmp(params, loaded, sizeof params) && !memcmp(opt->m, back->m, 2 * N * sizeof(float)) && back->t == 123,
          "params, m, v and t round-trip bit for bit");
    CHECK(got.step == 123 && got.cursor.epoch == 4 && got.cursor.pos == 17 && got.train_rng == 999 && got.best_val == 0.25 &&
          got.bad_evals == 2 && got.tokens_seen == (1u << 20) && got.elapsed_s == 12.5,
          "the loop state round-trips");

    /* another run's settings: refused, the key named, nothing changed */
    memcpy(loaded, sentinel, sizeof loaded);
    got.step = 77;
    rc = sm_checkpoint_load(path, "{\"batch\":8,\"lr\":0.001,\"mode\":\"lora\",\"seed\":1}", &got, loaded, back, NULL, &err);
    CHECK(rc == SM_EINVAL && strstr(err.msg, "its lr is 0.0002") && strstr(err.msg, "this run's is 0.001"), "other lr: %s", err.msg);
    CHECK(!memcmp(loaded, sentinel, sizeof loaded) && got.step == 77, "nothing changed on a refusal");
    rc = sm_checkpoint_load(path, "{\"batch\":8,\"lr\":0.00020000000949949026,\"mode\":\"lora\",\"rank\":8,\"seed\":1}", &got,
                            loaded, back, NULL, &err);
    CHECK(rc == SM_EINVAL && strstr(err.msg, "rank"), "a key the checkpoint lacks: %s", err.msg);
    rc = sm_checkpoint_load(path, "{\"batch\":8,\"lr\":0.00020000000949949026,\"mode\":\"lora\"}", &got, loaded, back, NULL, &err);
    CHECK(rc == SM_EINVAL && strstr(err.msg, "seed"), "a key this run lacks: %s", err.msg);
    sm_adamw *small = sm_adamw_new(N - 1, &ac, NULL);
    rc = sm_checkpoint_load(path, cfg, &got, loaded, small, NULL, &err);
    CHECK(rc == SM_EFORMAT && strstr(err.msg, "999 parameters"), "another parameter count: %s", err.msg);
    sm_adamw_free(small);

    /* damaged files */
    copy(path, other, -1);
    patch(other, 0, "GGUF", 4);
    rc = sm_checkpoint_load(other, cfg, &got, loaded, back, NULL, &err);
    CHECK(rc == SM_EFORMAT && strstr(err.msg, "magic"), "wrong magic: %s", err.msg);
    copy(path, other, -1);
    patch(other, 4, "\x02", 1);
    rc = sm_checkpoint_load(other, cfg, &got, loaded, back, NULL, &err);
    CHECK(rc == SM_EFORMAT && strstr(err.msg, "version 1, got 2"), "wrong version: %s", err.msg);
    copy(path, other, -1);
    patch(other, 200, "\xff", 1);
    rc = sm_checkpoint_load(other, cfg, &got, loaded, back, NULL, &err);
    CHECK(rc == SM_EFORMAT && strstr(err.msg, "checksum"), "a flipped byte: %s", err.msg);
    for (long cut = 0; cut < 16200; cut += 997) {
        copy(path, other, cut);
        rc = sm_checkpoint_load(other, cfg, &got, loaded, back, NULL, &err);
        if (rc != SM_EFORMAT) { CHECK(0, "truncated to %ld bytes: rc %d %s", cut, rc, err.msg); break; }
    }
    CHECK(!memcmp(loaded, sentinel, sizeof loaded), "truncated files refused, nothing changed");
    rc = sm_checkpoint_load("/nonexistent/x.ckpt", cfg, &got, loaded, back, NULL, &err);
    CHECK(rc == SM_EIO, "a missing file: %s", err.msg);
    rc = sm_checkpoint_save("/nonexistent/dir/x.ckpt", cfg, &st, params, opt, best, &err);
    CHECK(rc == SM_EIO, "an unwritable place: %s", err.msg);
    rc = sm_checkpoint_save(other, cfg, &st, params, opt, NULL, &err);
    CHECK(rc == 0 && sm_checkpoint_load(other, cfg, &got, loaded, back, NULL, &err) == 0, "without best parameters");
    rc = sm_checkpoint_load(other, cfg, &got, loaded, back, got_best, &err);
    CHECK(rc == SM_EFORMAT && strstr(err.msg, "no best"), "best parameters asked of a file without: %s", err.msg);

    sm_adamw_free(opt);
    sm_adamw_free(back);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    if (failures) {
        printf("test_checkpoint: %d FAILED\n", failures);
        return 1;
    }
    printf("test_checkpoint: all ok\n");
    return 0;
}
