/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * Guest side of the edu test, linked statically and run by /init: finds
 * QEMU's edu device (1234:11e8) in sysfs, maps its BAR0 through the
 * resource0 file and checks identification, liveness, the factorial, the
 * interrupt raise/ack registers, and a DMA round trip through a page of
 * its own whose physical address it reads from /proc/self/pagemap.
 * Prints "VFU-GUEST: PASS" or "VFU-GUEST: FAIL <check>" and exits.
 */

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define EDU_BUF 0x40000u
#define PAGE 4096u

static volatile uint8_t *bar;

static void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
    va_list ap;

    printf("VFU-GUEST: FAIL ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    exit(1);
}

static uint32_t rd32(unsigned off) { return *(volatile uint32_t *)(bar + off); }
static void wr32(unsigned off, uint32_t v) { *(volatile uint32_t *)(bar + off) = v; }
static void wr64(unsigned off, uint64_t v) { *(volatile uint64_t *)(bar + off) = v; }
static uint64_t rd64(unsigned off) { return *(volatile uint64_t *)(bar + off); }

/* Wait up to 5 s for (read(off) & mask) == 0. */
static void
wait_clear(unsigned off, uint32_t mask, const char *what)
{
    struct timespec t = { 0, 1000000 };

    for (int i = 0; i < 5000; i++) {
        if ((rd32(off) & mask) == 0) {
            return;
        }
        nanosleep(&t, NULL);
    }
    fail("%s did not finish within 5 s (register 0x%x = 0x%x)", what, off, rd32(off));
}

static int
read_hex(const char *dir, const char *file, unsigned *v)
{
    char path[600];
    FILE *f;
    int ok;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    ok = fscanf(f, "%x", v) == 1;
    fclose(f);
    return ok ? 0 : -1;
}

static void
find_edu(char *dir, size_t size)
{
    DIR *d = opendir("/sys/bus/pci/devices");
    struct dirent *e;
    unsigned vendor, device;

    if (d == NULL) {
        fail("no /sys/bus/pci/devices");
    }
    while ((e = readdir(d)) != NULL) {
        snprintf(dir, size, "/sys/bus/pci/devices/%s", e->d_name);
        if (read_hex(dir, "vendor", &vendor) == 0 && read_hex(dir, "device", &device) == 0 &&
            vendor == 0x1234 && device == 0x11e8) {
            closedir(d);
            return;
        }
    }
    fail("no PCI device 1234:11e8");
}

/* Memory decoding and bus mastering on, in the command register. */
static void
enable(const char *dir)
{
    char path[600];
    uint16_t cmd;
    int fd;

    snprintf(path, sizeof(path), "%s/config", dir);
    fd = open(path, O_RDWR);
    if (fd < 0 || pread(fd, &cmd, 2, 4) != 2) {
        fail("read the command register");
    }
    cmd |= 0x6;
    if (pwrite(fd, &cmd, 2, 4) != 2) {
        fail("write the command register");
    }
    close(fd);
}

static uint64_t
phys_of(void *p)
{
    uint64_t entry;
    int fd = open("/proc/self/pagemap", O_RDONLY);
    off_t at = (off_t)((uintptr_t)p / PAGE) * 8;

    if (fd < 0 || pread(fd, &entry, 8, at) != 8) {
        fail("read /proc/self/pagemap");
    }
    close(fd);
    if (!(entry & (1ull << 63)) || (entry & ((1ull << 55) - 1)) == 0) {
        fail("the DMA page is not present in /proc/self/pagemap");
    }
    return (entry & ((1ull << 55) - 1)) * PAGE;
}

static void
dma(uint64_t src, uint64_t dst, uint32_t cmd)
{
    wr64(0x80, src);
    wr64(0x88, dst);
    wr64(0x90, PAGE);
    wr64(0x98, cmd | 0x1);
    wait_clear(0x98, 0x1, "DMA");
}

int
main(void)
{
    char dir[512], path[600];
    uint8_t *page, pattern[PAGE];
    uint64_t phys;
    int fd;

    setvbuf(stdout, NULL, _IONBF, 0);
    find_edu(dir, sizeof(dir));
    enable(dir);
    snprintf(path, sizeof(path), "%s/resource0", dir);
    fd = open(path, O_RDWR | O_SYNC);
    bar = fd < 0 ? MAP_FAILED : mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (bar == MAP_FAILED) {
        fail("map BAR0 through %s", path);
    }

    if (rd32(0x00) != 0x010000ed) {
        fail("identification reads 0x%x, want 0x010000ed", rd32(0x00));
    }
    wr32(0x04, 0x12345678);
    if (rd32(0x04) != ~0x12345678u) {
        fail("liveness reads 0x%x after 0x12345678, want its inverse", rd32(0x04));
    }
    wr32(0x08, 10);
    wait_clear(0x20, 0x1, "factorial");
    if (rd32(0x08) != 3628800) {
        fail("10! reads %u, want 3628800", rd32(0x08));
    }
    wr32(0x60, 0x1234);
    if (rd32(0x24) != 0x1234) {
        fail("interrupt status reads 0x%x after raising 0x1234", rd32(0x24));
    }
    wr32(0x64, 0x1234);
    if (rd32(0x24) != 0) {
        fail("interrupt status reads 0x%x after the acknowledge", rd32(0x24));
    }
    printf("vfu-guest: edu registers: id, liveness, factorial, interrupt raise/ack\n");

    page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                -1, 0);
    if (page == MAP_FAILED || mlock(page, PAGE) < 0) {
        fail("allocate and lock a DMA page");
    }
    srand((unsigned)time(NULL));
    for (unsigned i = 0; i < PAGE; i++) {
        pattern[i] = (uint8_t)rand();
    }
    memcpy(page, pattern, PAGE);
    phys = phys_of(page);
    dma(phys, EDU_BUF, 0);          /* RAM to the device's buffer */
    memset(page, 0, PAGE);
    dma(EDU_BUF, phys, 0x2);        /* and back */
    for (unsigned i = 0; i < PAGE; i++) {
        if (page[i] != pattern[i]) {
            fail("DMA round trip: byte %u of the page at 0x%llx is 0x%02x, want 0x%02x", i,
                 (unsigned long long)phys, page[i], pattern[i]);
        }
    }
    if (rd64(0x80) != EDU_BUF || rd64(0x88) != phys) {
        fail("DMA address registers read back wrong");
    }
    printf("vfu-guest: DMA round trip of %u bytes through guest page 0x%llx\n", PAGE,
           (unsigned long long)phys);
    printf("VFU-GUEST: PASS\n");
    return 0;
}
