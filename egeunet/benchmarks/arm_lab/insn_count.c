/* qemu TCG plugin: count the aarch64 instructions a guest executes, in total and for a few
 * opcode classes that show which kernels XNNPACK picked (dot product, fp32 FMA, widening
 * integer multiply-accumulate). Built by setup.sh against the qemu-plugin.h of the installed
 * qemu (plugin API 1, qemu 7.x/8.x).
 *
 *   qemu-aarch64 -cpu cortex-a76 -plugin ./libinsncount.so,out=/tmp/counts.json prog ...
 *
 * Counters are plain inline adds (nearly free): exact for a single-threaded guest, which is how
 * egeunet's lab runs the interpreter (num_threads=1). At exit one JSON object is written to `out`. */
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

#if QEMU_PLUGIN_VERSION > 2
#error "insn_count.c uses plugin API 1-2 (qemu 7.x/8.x); qemu >= 9 changed qemu_plugin_insn_data and inline counters"
#endif

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

enum { C_SDOT, C_UDOT, C_FMLA, C_SMLAL, C_UMLAL, C_SMULL, C_UMULL, N_CLASSES };
static const char *class_names[N_CLASSES] = {"sdot", "udot", "fmla", "smlal", "umlal", "smull", "umull"};

static uint64_t total;
static uint64_t per_class[N_CLASSES];
static char *out_path;

/* A64 encodings (Arm ARM, "Advanced SIMD three same (extension)", "three different",
 * "vector x indexed element"). Returns a class index or -1. */
static int classify(uint32_t w)
{
    /* SDOT/UDOT (vector): 0 Q U 01110 10 0 Rm 100101 Rn Rd */
    if ((w & 0x9FE0FC00u) == 0x0E809400u)
        return (w & (1u << 29)) ? C_UDOT : C_SDOT;
    /* SDOT/UDOT (by element): 0 Q U 01111 10 L M Rm 1110 H 0 Rn Rd */
    if ((w & 0x9FC0F400u) == 0x0F80E000u)
        return (w & (1u << 29)) ? C_UDOT : C_SDOT;
    /* FMLA (vector, single/double): 0 Q 0 01110 0 sz 1 Rm 110011 Rn Rd */
    if ((w & 0xBFA0FC00u) == 0x0E20CC00u)
        return C_FMLA;
    /* FMLA (by element, single/double): 0 Q 0 01111 1 sz L M Rm 0001 H 0 Rn Rd */
    if ((w & 0xBF80F400u) == 0x0F801000u)
        return C_FMLA;
    /* SMLAL/UMLAL{2} (vector): 0 Q U 01110 size 1 Rm 100000 Rn Rd */
    if ((w & 0x9F20FC00u) == 0x0E208000u)
        return (w & (1u << 29)) ? C_UMLAL : C_SMLAL;
    /* SMULL/UMULL{2} (vector): 0 Q U 01110 size 1 Rm 110000 Rn Rd */
    if ((w & 0x9F20FC00u) == 0x0E20C000u)
        return (w & (1u << 29)) ? C_UMULL : C_SMULL;
    return -1;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &total, n);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint32_t w;
        if (qemu_plugin_insn_size(insn) != 4)
            continue;
        memcpy(&w, qemu_plugin_insn_data(insn), 4); /* A64 is little-endian here */
        int c = classify(w);
        if (c >= 0)
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &per_class[c], 1);
    }
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    FILE *f = out_path ? fopen(out_path, "w") : stderr;
    if (!f)
        return;
    fprintf(f, "{\"total\": %" PRIu64, total);
    for (int c = 0; c < N_CLASSES; c++)
        fprintf(f, ", \"%s\": %" PRIu64, class_names[c], per_class[c]);
    fprintf(f, "}\n");
    if (f != stderr)
        fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (g_str_has_prefix(argv[i], "out="))
            out_path = g_strdup(argv[i] + 4);
        else {
            fprintf(stderr, "insn_count: unknown option %s (only out=PATH)\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
