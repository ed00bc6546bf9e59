/*
 * cmd_keygen.c -- `zql keygen`: make a CURVE key pair for zqld or a client (runtime
 * services).
 *
 *   zql keygen [--out FILE] [--force]
 *
 * The pair comes from zmq_curve_keypair (Curve25519 through libsodium, zmq_curve(7)),
 * written as Z85 text (ZeroMQ RFC 32) in the key file format that zqld's
 * curve_secret_key_file, `zql send --key` and zql_client_read_keyfile read:
 *
 *   public = <40 characters>
 *   secret = <40 characters>
 *
 * Without --out both lines go to stdout. With --out FILE the pair goes to FILE, created
 * with mode 0600 (never over an existing file unless --force), and the public line alone
 * to FILE.pub (0644): the file to hand to the other side (a client's goes into zqld's
 * curve_allow_file, the server's to the clients' --server-key @FILE). Both files are
 * fsynced; stdout then shows the public key.
 */
#include "runtime/base/zql_common.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "runtime/zmqdl.h"

#include "runtime/base/alloc.h"
#include "runtime/base/strbuf.h"
#include "runtime/cli.h"

/* runtime/cli.h declares the subcommands; repeated here for -Wmissing-prototypes */
int zql_cmd_keygen(const zql_cli_t *cli, int argc, char **argv);

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static void usage(FILE *f)
{
  fputs("Usage: zql keygen [--out FILE] [--force]\n"
        "\n"
        "Make a CURVE key pair (Z85) for zqld's curve_secret_key_file or a client's\n"
        "`zql send --key`. Prints `public = ...` and `secret = ...` lines.\n"
        "\n"
        "Options:\n"
        "  -o, --out FILE   write the pair to FILE (mode 0600) and the public key to\n"
        "                   FILE.pub, instead of printing the secret\n"
        "  --force          replace existing files\n"
        "  -h, --help       show this help\n",
        f);
}

#define usage_error(...) zql_cli_usage_error("keygen", __VA_ARGS__)

/* Write text to a new file with `mode`, fsynced; 0 or -1 (reported). */
static int write_new(const char *path, const char *text, mode_t mode, bool force)
{
  if (force && unlink(path) != 0 && errno != ENOENT) {
    fprintf(stderr, "zql keygen: %s: %s\n", path, strerror(errno));
    return -1;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    fprintf(stderr, "zql keygen: %s: %s%s\n", path, strerror(errno),
            errno == EEXIST ? " (use --force to replace it)" : "");
    return -1;
  }
  size_t len = strlen(text), done = 0;
  int rc = fchmod(fd, mode); /* whatever the umask */
  while (rc == 0 && done < len) {
    ssize_t n = write(fd, text + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      rc = -1;
    else
      done += (size_t)n;
  }
  if (rc == 0)
    rc = fsync(fd);
  int e = errno;
  if (close(fd) != 0 && rc == 0) {
    rc = -1;
    e = errno;
  }
  if (rc != 0) {
    fprintf(stderr, "zql keygen: %s: %s\n", path, strerror(e));
    unlink(path);
  }
  return rc;
}

int zql_cmd_keygen(const zql_cli_t *cli, int argc, char **argv)
{
  const char *out = NULL;
  bool force = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return EXIT_OK;
    }
    if (strcmp(a, "--force") == 0) {
      force = true;
    } else if (strcmp(a, "--out") == 0 || strcmp(a, "-o") == 0) {
      if (i + 1 >= argc)
        return usage_error("option needs a file name: '%s'", a);
      out = argv[++i];
    } else if (strncmp(a, "--out=", 6) == 0) {
      out = a + 6;
    } else if (a[0] == '-' && a[1]) {
      return usage_error("unknown option '%s'", a);
    } else {
      return usage_error("unexpected argument '%s'", a);
    }
  }
  if (out && !*out)
    return usage_error("--out needs a file name");
  if (force && !out)
    return usage_error("--force is for --out");

  char pub[41], sec[41], lerr[256];
  if (zql_zmq_load(lerr, sizeof lerr) != 0) {
    fprintf(stderr, "zql keygen: %s\n", lerr);
    return EXIT_FAIL;
  }
  if (zmq_curve_keypair(pub, sec) != 0) {
    fprintf(stderr, "zql keygen: CURVE is not available in this libzmq: %s\n",
            zmq_strerror(errno));
    return EXIT_FAIL;
  }
  zql_strbuf_t pair = ZQL_STRBUF_INIT, pubfile = ZQL_STRBUF_INIT, pubtext = ZQL_STRBUF_INIT;
  zql_strbuf_addf(&pair, "public = %s\nsecret = %s\n", pub, sec);
  zql_strbuf_addf(&pubtext, "public = %s\n", pub);
  if (out)
    zql_strbuf_addf(&pubfile, "%s.pub", out);
  int status = EXIT_OK;
  if (pair.oom || pubfile.oom || pubtext.oom) {
    fputs("zql keygen: out of memory\n", stderr);
    status = EXIT_FAIL;
  } else if (!out) {
    fputs(pair.buf, stdout);
  } else if (write_new(out, pair.buf, 0600, force) != 0) {
    status = EXIT_FAIL;
  } else if (write_new(pubfile.buf, pubtext.buf, 0644, force) != 0) {
    unlink(out);
    status = EXIT_FAIL;
  } else {
    fputs(pubtext.buf, stdout);
    if (!cli || cli->verbosity >= 0)
      fprintf(stderr, "zql keygen: wrote %s (the pair, mode 0600) and %s\n", out, pubfile.buf);
  }
  /* the secret does not stay in freed memory */
  explicit_bzero(sec, sizeof sec);
  if (pair.len)
    explicit_bzero(pair.buf, pair.len);
  zql_strbuf_release(&pair);
  zql_strbuf_release(&pubfile);
  zql_strbuf_release(&pubtext);
  if (fflush(stdout) != 0 && status == EXIT_OK) {
    fprintf(stderr, "zql keygen: stdout: %s\n", strerror(errno));
    status = EXIT_FAIL;
  }
  return status;
}
