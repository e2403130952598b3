// The host SIMT runtime: fibers, the block scheduler, barriers, warp collectives, the OS-thread
// pool and launch validation. See kernels/sim/README.md for the design and its limits.
#include "simt.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) && !defined(MOODGRAD_SIM_UCONTEXT)
#define SIM_ASM_SWITCH 1
#else
#define SIM_ASM_SWITCH 0
#include <ucontext.h>
#endif

namespace sim {
namespace detail {
thread_local constinit ThreadCtx* t_thread = nullptr;
thread_local constinit BlockCtx t_block{};
}  // namespace detail

namespace {

using detail::WarpOp;

// ---- configuration ------------------------------------------------------------------------

constexpr unsigned kMaxBlockThreads = 1024;
// Dynamic shared memory: 48 KiB per block unless the kernel opted in to more
// (moodgrad_sim_set_max_dynamic_shared, cuFuncSetAttribute's MAX_DYNAMIC_SHARED_SIZE_BYTES), up
// to the emulated card's opt-in limit (sm_90's 227 KiB at most).
constexpr unsigned kDefaultSharedBytes = 48 * 1024;
constexpr unsigned kMaxSharedBytes = 227 * 1024;
constexpr unsigned kWarp = 32;

unsigned env_unsigned(const char* name, unsigned fallback, unsigned lo, unsigned hi) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    char* end = nullptr;
    const unsigned long x = std::strtoul(v, &end, 10);
    if (*end != '\0' || x < lo || x > hi) {
        std::fprintf(stderr, "moodgrad sim: ignoring %s=%s (expected %u..%u)\n", name, v, lo, hi);
        return fallback;
    }
    return (unsigned)x;
}

// ---- the schedule: thread order or a seeded shuffle ---------------------------------------

struct Schedule {
    bool shuffle;
    uint64_t seed;
};

// The process default: MOODGRAD_SIM_SHUFFLE=<u64 seed> (decimal or 0x-hex), `off` for thread
// order, unset for the built-in seed (shuffling is on by default, so tests see order bugs).
constexpr uint64_t kDefaultSeed = 0x5eed5eed5eed5eedull;

Schedule default_schedule() {
    static const Schedule d = [] {
        const char* v = std::getenv("MOODGRAD_SIM_SHUFFLE");
        if (!v || !*v) return Schedule{true, kDefaultSeed};
        if (std::strcmp(v, "off") == 0) return Schedule{false, 0};
        char* end = nullptr;
        const unsigned long long x = std::strtoull(v, &end, 0);
        if (*end != '\0') {
            std::fprintf(stderr, "moodgrad sim: ignoring MOODGRAD_SIM_SHUFFLE=%s (expected a u64 seed or `off`)\n", v);
            return Schedule{true, kDefaultSeed};
        }
        return Schedule{true, (uint64_t)x};
    }();
    return d;
}

// The launching thread's override (moodgrad_sim_set_schedule): 0 = the process default,
// 1 = thread order, 2 = shuffled with t_override_seed.
thread_local int t_override = 0;
thread_local uint64_t t_override_seed = 0;

Schedule current_schedule() {
    if (t_override == 1) return Schedule{false, 0};
    if (t_override == 2) return Schedule{true, t_override_seed};
    return default_schedule();
}

inline uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t hash_name(const char* s) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
    for (; *s; ++s) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

// A seeded bijection of [0, n): which block the k-th claim runs. An invertible mix of the
// smallest power-of-two range holding n (odd multiply, xor-shift, add: each a bijection mod
// 2^bits), cycle-walked back into [0, n).
struct BlockOrder {
    uint64_t n = 1, mask = 0;
    unsigned half = 1;
    uint64_t mul[3] = {1, 1, 1}, add[3] = {0, 0, 0};
    bool identity = true;

    BlockOrder() = default;
    BlockOrder(uint64_t count, uint64_t seed) : n(count) {
        if (count < 2) return;
        identity = false;
        unsigned bits = 1;
        while (bits < 64 && (uint64_t(1) << bits) < count) ++bits;
        mask = bits == 64 ? ~uint64_t(0) : (uint64_t(1) << bits) - 1;
        half = (bits + 1) / 2;
        for (int r = 0; r < 3; ++r) {
            seed = splitmix64(seed);
            mul[r] = seed | 1;
            seed = splitmix64(seed);
            add[r] = seed;
        }
    }
    uint64_t mix(uint64_t x) const {
        for (int r = 0; r < 3; ++r) {
            x = (x * mul[r]) & mask;
            x ^= x >> half;
            x = (x + add[r]) & mask;
        }
        return x;
    }
    uint64_t operator()(uint64_t k) const {
        if (identity) return k;
        uint64_t x = mix(k);
        while (x >= n) x = mix(x);
        return x;
    }
};

size_t page_size() {
    static const size_t p = (size_t)sysconf(_SC_PAGESIZE);
    return p;
}

// Fiber stack size: MOODGRAD_SIM_STACK_KB (default 64), rounded up to whole pages.
size_t stack_bytes() {
    static const size_t s = [] {
        const size_t kb = env_unsigned("MOODGRAD_SIM_STACK_KB", 64, 16, 1 << 20);
        const size_t p = page_size();
        return (kb * 1024 + p - 1) / p * p;
    }();
    return s;
}

// OS threads running blocks, the launching thread included: MOODGRAD_SIM_THREADS, else the
// available parallelism.
unsigned pool_threads() {
    static const unsigned n = [] {
        unsigned hw = std::thread::hardware_concurrency();
        if (hw == 0) hw = 1;
        return env_unsigned("MOODGRAD_SIM_THREADS", hw, 1, 4096);
    }();
    return n;
}

// ---- errors -------------------------------------------------------------------------------

thread_local std::string t_last_error;
// The card this thread's launches emulate (moodgrad_sim_set_arch): compute capability and the
// most dynamic shared memory a block may opt in to. sm_90 unless the launcher says otherwise.
thread_local unsigned t_arch = 90;
thread_local unsigned t_optin_bytes = 227 * 1024;

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

// ---- fiber stacks -------------------------------------------------------------------------

struct Stack {
    char* base = nullptr;  // lowest usable byte (the guard page is just below)
    size_t size = 0;       // mapped bytes above the guard page
    char* top = nullptr;   // where the fiber's stack begins (16-byte aligned, <= base + size)
};

// Stack tops are staggered ("coloured") by up to this much: 256 fibers whose hot frames all sat
// at the same offset in a page would fight over the same few cache sets.
constexpr size_t kStackColours = 8192;

Stack map_stack() {
    static thread_local unsigned mapped = 0;
    const size_t guard = page_size();
    const size_t size = stack_bytes() + kStackColours;
    void* p = mmap(nullptr, size + guard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
                   0);
    if (p == MAP_FAILED) {
        std::fprintf(stderr, "moodgrad sim: cannot map a %zu-byte fiber stack\n", size);
        std::abort();
    }
    // A kernel overflowing its stack hits this page and crashes instead of corrupting memory.
    mprotect(p, guard, PROT_NONE);
    char* base = static_cast<char*>(p) + guard;
    const size_t colour = (size_t(mapped++) * 576) % kStackColours;  // 576 = 9 cache lines
    return Stack{base, size, base + size - colour};
}

void unmap_stack(const Stack& s) {
    munmap(s.base - page_size(), s.size + page_size());
}

// ---- context switch -----------------------------------------------------------------------

struct Fiber;
[[noreturn]] void fiber_main(Fiber* f);

#if SIM_ASM_SWITCH
// moodgrad_sim_switch(save, load): pushes the callee-saved registers, stores the stack pointer
// in *save, loads `load` and pops the other context's registers. A new fiber's stack is laid out
// as if it had called moodgrad_sim_switch from moodgrad_sim_start, which calls r13(r12).
// MXCSR and the x87 control word are not switched: all fibers share the OS thread's settings.
extern "C" void moodgrad_sim_switch(void** save, void* load);
extern "C" void moodgrad_sim_start();
asm(R"(
    .text
    .p2align 4
    .globl moodgrad_sim_switch
    .hidden moodgrad_sim_switch
    .type moodgrad_sim_switch, @function
moodgrad_sim_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    popq %rax
    jmpq *%rax
    .size moodgrad_sim_switch, .-moodgrad_sim_switch

    .p2align 4
    .globl moodgrad_sim_start
    .hidden moodgrad_sim_start
    .type moodgrad_sim_start, @function
moodgrad_sim_start:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size moodgrad_sim_start, .-moodgrad_sim_start
)");

struct Context {
    void* sp = nullptr;
};

inline void context_switch(Context& from, Context& to) {
    moodgrad_sim_switch(&from.sp, to.sp);
}

void context_make(Context& c, const Stack& s, Fiber* f) {
    const uintptr_t top = reinterpret_cast<uintptr_t>(s.top) & ~uintptr_t(15);
    uintptr_t* sp = reinterpret_cast<uintptr_t*>(top);
    sp[-1] = reinterpret_cast<uintptr_t>(&moodgrad_sim_start);  // return address
    sp[-2] = 0;                                                 // rbp
    sp[-3] = 0;                                                 // rbx
    sp[-4] = reinterpret_cast<uintptr_t>(f);                    // r12: argument
    sp[-5] = reinterpret_cast<uintptr_t>(&fiber_main);          // r13: entry
    sp[-6] = 0;                                                 // r14
    sp[-7] = 0;                                                 // r15
    c.sp = sp - 7;
}
#else
// Portable fallback. glibc's swapcontext saves and restores the signal mask with a system call
// on every switch, so this is several times slower.
struct Context {
    ucontext_t uc;
};

void ucontext_entry(unsigned hi, unsigned lo) {
    fiber_main(reinterpret_cast<Fiber*>((uintptr_t(hi) << 32) | uintptr_t(lo)));
}

inline void context_switch(Context& from, Context& to) {
    swapcontext(&from.uc, &to.uc);
}

void context_make(Context& c, const Stack& s, Fiber* f) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = s.base;
    c.uc.uc_stack.ss_size = size_t(s.top - s.base);
    c.uc.uc_link = nullptr;
    const uintptr_t p = reinterpret_cast<uintptr_t>(f);
    makecontext(&c.uc, reinterpret_cast<void (*)()>(&ucontext_entry), 2, unsigned(p >> 32), unsigned(p));
}
#endif

// ---- fibers, warps and the block scheduler ------------------------------------------------

enum class State : unsigned char { Fresh, Ready, Running, Barrier, Warp, Active, Done, Failed };

struct Fiber {
    ThreadCtx ctx;  // what threadIdx reads
    unsigned linear = 0, lane = 0, warp = 0;
    State state = State::Fresh;
    Context context;
    Stack stack;
    // The pending warp collective.
    WarpOp op = WarpOp::Sync;
    unsigned mask = 0;
    int arg = 0, width = 32, bytes = 0;
    unsigned long long value = 0, result = 0;
    // The pending __activemask() call site.
    const char* site_file = "";
    unsigned site_line = 0, site_column = 0;
    // cp.async copies issued and not yet completed by a cp.async.wait_group; `groups` counts the
    // commits so far, so an uncommitted copy has group == groups.
    struct Copy {
        void* dst;
        const void* src;
        unsigned bytes, src_bytes, group;
    };
    std::vector<Copy> copies;
    unsigned groups = 0;
};

// One lane's operands of mma.sync (posted through the warp collective as a pointer).
struct MmaLane {
    float* d;
    const unsigned* a;
    const unsigned* b;
};

struct Warp {
    unsigned base = 0;      // linear id of lane 0
    unsigned existing = 0;  // lanes that exist (a partial last warp has fewer than 32)
    unsigned exited = 0;
    unsigned waiting = 0;  // lanes suspended in a warp collective
    unsigned active = 0;   // lanes suspended in __activemask()
};

struct Job {
    const char* name;
    Entry entry;
    const void* closure;
    dim3 grid, block;
    unsigned shared_bytes;
    // The emulated card's compute capability (major·10 + minor): mma.sync and cp.async need 80.
    unsigned arch = 90;
    uint64_t total;
    Schedule schedule{false, 0};
    BlockOrder order;  // claim k runs block order(k)
    std::atomic<uint64_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex error_mu;
    std::string error;
    int users = 0;  // worker threads inside work(); guarded by the pool's mutex

    void fail(std::string message) {
        std::lock_guard<std::mutex> g(error_mu);
        if (!failed.exchange(true)) error = std::move(message);
    }
};

const char* op_name(WarpOp op) {
    switch (op) {
        case WarpOp::Shfl: return "__shfl_sync";
        case WarpOp::Up: return "__shfl_up_sync";
        case WarpOp::Down: return "__shfl_down_sync";
        case WarpOp::Xor: return "__shfl_xor_sync";
        case WarpOp::Sync: return "__syncwarp";
        case WarpOp::Ballot: return "__ballot_sync";
        case WarpOp::Any: return "__any_sync";
        case WarpOp::All: return "__all_sync";
        case WarpOp::Mma: return "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32";
    }
    return "?";
}

const char* short_file(const char* path) {
    const char* k = std::strstr(path, "kernels/");
    return k ? k : path;
}

// One per OS thread that runs blocks (pool workers and launching threads): runs one block at a
// time, so it also owns that thread's dynamic shared memory and fiber stacks.
class Runner {
public:
    ~Runner() {
        for (const Stack& s : free_stacks_) unmap_stack(s);
        std::free(shared_);
    }

    // Sets this thread up for `job` (before its first block of that job).
    void begin(const Job& job);
    // Runs block `index` of the job; false (and job.fail) on error.
    bool run_block(Job& job, uint64_t index);

    // Called on a fiber (through the kernel-facing entry points).
    void syncthreads(const char* file, unsigned line, unsigned column);
    unsigned long long warp_collective(WarpOp op, unsigned mask, unsigned long long value, int arg, int width,
                                       int bytes);
    unsigned activemask(const char* file, unsigned line, unsigned column);
    void* dynamic_shared() const { return shared_; }
    void mma_tf32(float* d, const unsigned* a, const unsigned* b);
    void cp_async(void* dst, const void* src, unsigned bytes, unsigned src_bytes);
    void cp_async_commit() { ++current_->groups; }
    void cp_async_wait(unsigned pending);

    // The fiber's kernel body finished.
    [[noreturn]] void exit_fiber(Fiber* f) {
        f->state = State::Done;
        context_switch(f->context, scheduler_);
        __builtin_unreachable();
    }
    void run_entry() const { job_->entry(job_->closure); }
    [[noreturn]] void fail_misaligned(const std::string& what) {
        fail_on_fiber(format("%s in %s of %s", what.c_str(), thread_name(*current_).c_str(), block_name().c_str()));
    }

private:
    void push(unsigned i) {
        fibers_[i].state = State::Ready;
        unsigned tail = head_ + count_;
        if (tail >= n_) tail -= n_;
        queue_[tail] = i;
        ++count_;
    }
    // The next fiber to resume: the ring's head in thread order, else a seeded pick among the
    // ready fibers (swapped to the head), so code that relies on thread order between barriers
    // or collectives sees other orders.
    unsigned pop() {
        if (shuffle_ && count_ > 1) {
            rng_ = splitmix64(rng_);
            const unsigned j = (unsigned)(((rng_ >> 32) * (uint64_t)count_) >> 32);
            unsigned at = head_ + j;
            if (at >= n_) at -= n_;
            std::swap(queue_[head_], queue_[at]);
        }
        const unsigned i = queue_[head_];
        if (++head_ == n_) head_ = 0;
        --count_;
        return i;
    }
    [[noreturn]] void fail_on_fiber(std::string message);
    void fail(std::string message) {
        if (!failed_) {
            failed_ = true;
            error_ = std::move(message);
        }
    }
    std::string block_name() const {
        const uint3 b = detail::t_block.block_idx;
        return format("block (%u,%u,%u)", b.x, b.y, b.z);
    }
    std::string thread_name(const Fiber& f) const {
        return format("thread (%u,%u,%u)", f.ctx.tid.x, f.ctx.tid.y, f.ctx.tid.z);
    }
    std::string barrier_site() const {
        return format("%s:%u:%u", short_file(bar_file_), bar_line_, bar_column_);
    }
    void on_exit(Fiber& f);
    bool try_complete_active(Warp& w, const Fiber* caller);
    void complete_mma(const Warp& w);
    static void land(const Fiber::Copy& c) {
        if (c.src_bytes) std::memcpy(c.dst, c.src, c.src_bytes);
        if (c.src_bytes < c.bytes) std::memset(static_cast<unsigned char*>(c.dst) + c.src_bytes, 0, c.bytes - c.src_bytes);
    }
    void describe_deadlock();
    Stack take_stack() {
        if (free_stacks_.empty()) return map_stack();
        Stack s = free_stacks_.back();
        free_stacks_.pop_back();
        return s;
    }

    const Job* job_ = nullptr;
    unsigned n_ = 0;  // threads per block
    dim3 block_dim_{0, 0, 0};
    std::vector<Fiber> fibers_;
    std::vector<Warp> warps_;
    std::vector<unsigned> queue_;  // ring of ready fibers; each fiber is queued at most once
    unsigned head_ = 0, count_ = 0;
    bool shuffle_ = false;
    uint64_t rng_ = 0;
    Context scheduler_;
    Fiber* current_ = nullptr;
    std::vector<Stack> free_stacks_;
    unsigned char* shared_ = nullptr;

    unsigned live_ = 0, exited_ = 0;
    unsigned bar_count_ = 0;
    const char* bar_file_ = "";
    unsigned bar_line_ = 0, bar_column_ = 0;
    bool failed_ = false;
    std::string error_;
};

thread_local constinit Runner* t_runner = nullptr;

Runner& runner() {
    // Destroyed (stacks unmapped) when the OS thread exits.
    thread_local std::unique_ptr<Runner> owner;
    if (!t_runner) {
        owner = std::make_unique<Runner>();
        t_runner = owner.get();
    }
    return *t_runner;
}

// A misaligned access reported by the sanitizer hook: fails the running fiber's launch like any
// other kernel error; outside a kernel (cannot happen: only kernel code dereferences user
// pointers) it aborts.
[[noreturn]] void misaligned_on_fiber(const std::string& what) {
    if (!t_runner || !detail::t_thread) {
        std::fprintf(stderr, "moodgrad sim: %s (outside a kernel)\n", what.c_str());
        std::abort();
    }
    t_runner->fail_misaligned(what);
}

[[noreturn]] void fiber_main(Fiber* f) {
    Runner& r = *t_runner;
    r.run_entry();
    r.exit_fiber(f);
}

void Runner::begin(const Job& job) {
    job_ = &job;
    detail::t_block.grid_dim = job.grid;
    detail::t_block.block_dim = job.block;
    if (!shared_) {
        shared_ = static_cast<unsigned char*>(std::aligned_alloc(64, kMaxSharedBytes));
        if (!shared_) std::abort();
    }
    const dim3 b = job.block;
    if (b.x == block_dim_.x && b.y == block_dim_.y && b.z == block_dim_.z) return;
    block_dim_ = b;
    n_ = b.x * b.y * b.z;
    fibers_.assign(n_, Fiber{});
    queue_.assign(n_, 0);
    for (unsigned i = 0; i < n_; ++i) {
        Fiber& f = fibers_[i];
        f.linear = i;
        f.lane = i % kWarp;
        f.warp = i / kWarp;
        f.ctx.tid = uint3{i % b.x, (i / b.x) % b.y, i / (b.x * b.y)};
    }
    warps_.assign((n_ + kWarp - 1) / kWarp, Warp{});
    for (unsigned w = 0; w < warps_.size(); ++w) {
        const unsigned lanes = std::min(kWarp, n_ - w * kWarp);
        warps_[w].base = w * kWarp;
        warps_[w].existing = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
    }
}

bool Runner::run_block(Job& job, uint64_t index) {
    const uint64_t gx = job.grid.x, gy = job.grid.y;
    detail::t_block.block_idx = uint3{unsigned(index % gx), unsigned(index / gx % gy), unsigned(index / (gx * gy))};
    if (job.shared_bytes) std::memset(shared_, 0xFF, job.shared_bytes);

    live_ = n_;
    exited_ = 0;
    bar_count_ = 0;
    failed_ = false;
    for (Warp& w : warps_) w.exited = w.waiting = w.active = 0;
    head_ = 0;
    count_ = n_;
    for (unsigned i = 0; i < n_; ++i) {
        fibers_[i].state = State::Fresh;
        fibers_[i].copies.clear();
        fibers_[i].groups = 0;
        queue_[i] = i;
    }
    shuffle_ = job.schedule.shuffle;
    if (shuffle_) rng_ = splitmix64(job.schedule.seed ^ hash_name(job.name) ^ splitmix64(index));

    while (count_ > 0 && !failed_) {
        const unsigned i = pop();
        Fiber& f = fibers_[i];
        if (f.state == State::Fresh) {
            f.stack = take_stack();
            context_make(f.context, f.stack, &f);
        }
        f.state = State::Running;
        current_ = &f;
        detail::t_thread = &f.ctx;
        context_switch(scheduler_, f.context);
        if (f.state == State::Done) on_exit(f);
        // The fiber blocked or exited: lanes waiting in __activemask() may now be complete.
        Warp& w = warps_[f.warp];
        if (w.active && (f.state == State::Done || f.state == State::Barrier || f.state == State::Warp) && !failed_)
            try_complete_active(w, nullptr);
    }
    detail::t_thread = nullptr;
    current_ = nullptr;
    if (!failed_ && live_ > 0) describe_deadlock();

    // Reclaim the stacks of fibers that finished or were abandoned (after an error, or blocked
    // forever); abandoned fibers' frames are simply dropped (kernel locals are trivial types).
    for (Fiber& f : fibers_) {
        if (f.state != State::Fresh && f.state != State::Done) free_stacks_.push_back(f.stack);
        f.state = State::Fresh;
    }
    if (failed_) {
        const std::string seed = job.schedule.shuffle
                                     ? format(" [schedule seed 0x%016llx: MOODGRAD_SIM_SHUFFLE=0x%016llx repeats it, "
                                              "=off runs thread order]",
                                              (unsigned long long)job.schedule.seed,
                                              (unsigned long long)job.schedule.seed)
                                     : std::string(" [thread-order schedule]");
        job.fail(format("kernel %s: %s%s", job.name, error_.c_str(), seed.c_str()));
        return false;
    }
    return true;
}

void Runner::on_exit(Fiber& f) {
    // Copies still in flight land (a GPU thread's cp.async completes even if it never waits).
    for (const Fiber::Copy& c : f.copies) land(c);
    f.copies.clear();
    free_stacks_.push_back(f.stack);  // LIFO: the next fresh fiber reuses this (cache-hot) stack
    --live_;
    ++exited_;
    Warp& w = warps_[f.warp];
    w.exited |= 1u << f.lane;
    if (bar_count_ > 0) {
        fail(format("__syncthreads not reached by all threads of %s: %s exited while %u thread%s wait%s at %s",
                    block_name().c_str(), thread_name(f).c_str(), bar_count_, bar_count_ == 1 ? "" : "s",
                    bar_count_ == 1 ? "s" : "", barrier_site().c_str()));
        return;
    }
    for (unsigned bits = w.waiting; bits; bits &= bits - 1) {
        const Fiber& g = fibers_[w.base + __builtin_ctz(bits)];
        if (g.mask & (1u << f.lane)) {
            fail(format("%s of %s (lane %u of warp %u) exited while lane %u waits for it at %s (mask 0x%08x)",
                        thread_name(f).c_str(), block_name().c_str(), f.lane, f.warp, g.lane, op_name(g.op),
                        g.mask));
            return;
        }
    }
}

void Runner::fail_on_fiber(std::string message) {
    fail(std::move(message));
    current_->state = State::Failed;
    context_switch(current_->context, scheduler_);
    __builtin_unreachable();
}

void Runner::syncthreads(const char* file, unsigned line, unsigned column) {
    Fiber& f = *current_;
    if (exited_ > 0) {
        fail_on_fiber(format("__syncthreads not reached by all threads of %s: %s waits at %s:%u:%u after %u "
                             "thread%s of the block exited",
                             block_name().c_str(), thread_name(f).c_str(), short_file(file), line, column, exited_,
                             exited_ == 1 ? "" : "s"));
    }
    if (bar_count_ == 0) {
        bar_file_ = file;
        bar_line_ = line;
        bar_column_ = column;
    } else if (line != bar_line_ || column != bar_column_ || (file != bar_file_ && std::strcmp(file, bar_file_) != 0)) {
        fail_on_fiber(format("__syncthreads not reached by all threads of %s: %s waits at %s:%u:%u while %u "
                             "thread%s wait%s at %s",
                             block_name().c_str(), thread_name(f).c_str(), short_file(file), line, column,
                             bar_count_, bar_count_ == 1 ? "" : "s", bar_count_ == 1 ? "s" : "",
                             barrier_site().c_str()));
    }
    if (bar_count_ + 1 == live_) {
        // The last arrival releases the others (in thread order) and carries on without a switch.
        bar_count_ = 0;
        for (unsigned i = 0; i < n_; ++i)
            if (fibers_[i].state == State::Barrier) push(i);
        return;
    }
    ++bar_count_;
    f.state = State::Barrier;
    context_switch(f.context, scheduler_);
}

unsigned long long Runner::warp_collective(WarpOp op, unsigned mask, unsigned long long value, int arg, int width,
                                           int bytes) {
    Fiber& f = *current_;
    Warp& w = warps_[f.warp];
    const unsigned bit = 1u << f.lane;
    const char* name = op_name(op);
    if (!(mask & bit)) {
        fail_on_fiber(format("%s of %s (lane %u of warp %u) called %s with mask 0x%08x, which leaves it out",
                             thread_name(f).c_str(), block_name().c_str(), f.lane, f.warp, name, mask));
    }
    if (op <= WarpOp::Xor && (width < 1 || width > 32 || (width & (width - 1)) != 0)) {
        fail_on_fiber(format("%s of %s called %s with width %d (must be a power of two, 1 to 32)",
                             thread_name(f).c_str(), block_name().c_str(), name, width));
    }
    if (mask & ~w.existing) {
        const dim3 b = detail::t_block.block_dim;
        fail_on_fiber(format("%s of %s (lane %u of warp %u) called %s with mask 0x%08x, which names lanes "
                             "0x%08x that do not exist: blockDim (%u,%u,%u) = %u threads, so warp %u has only "
                             "lanes 0x%08x. Pass the mask of the existing lanes (e.g. __activemask(), or "
                             "(1u << lanes) - 1 for the last warp) - a GPU leaves this undefined",
                             thread_name(f).c_str(), block_name().c_str(), f.lane, f.warp, name, mask,
                             mask & ~w.existing, b.x, b.y, b.z, n_, f.warp, w.existing));
    }
    const unsigned group = mask;
    if (group & w.exited) {
        fail_on_fiber(format("%s of %s (lane %u of warp %u) called %s with mask 0x%08x, but lanes 0x%08x of "
                             "that mask have exited",
                             thread_name(f).c_str(), block_name().c_str(), f.lane, f.warp, name, mask,
                             group & w.exited));
    }
    for (unsigned bits = w.waiting; bits; bits &= bits - 1) {
        const Fiber& g = fibers_[w.base + __builtin_ctz(bits)];
        const bool overlap = (g.mask & group) != 0;
        if (g.mask != mask ? overlap : (g.op != op || g.bytes != bytes)) {
            fail_on_fiber(format("warp %u of %s: lane %u called %s (mask 0x%08x, %d-byte value) while lane %u "
                                 "waits at %s (mask 0x%08x, %d-byte value)",
                                 f.warp, block_name().c_str(), f.lane, name, mask, bytes, g.lane,
                                 op_name(g.op), g.mask, g.bytes));
        }
    }
    f.op = op;
    f.mask = mask;
    f.arg = arg;
    f.width = width;
    f.bytes = bytes;
    f.value = value;
    if (((w.waiting | bit) & group) != group) {
        w.waiting |= bit;
        f.state = State::Warp;
        context_switch(f.context, scheduler_);
        return f.result;
    }

    // The last lane of the group has arrived: compute every lane's result, wake the others.
    if (op == WarpOp::Mma) {
        complete_mma(w);
    } else if (op >= WarpOp::Ballot) {
        unsigned ballot = 0;
        for (unsigned bits = group; bits; bits &= bits - 1) {
            const unsigned l = __builtin_ctz(bits);
            if (fibers_[w.base + l].value) ballot |= 1u << l;
        }
        const unsigned long long r = op == WarpOp::Ballot ? ballot
                                     : op == WarpOp::Any  ? (ballot != 0)
                                                          : (ballot == group);
        for (unsigned bits = group; bits; bits &= bits - 1) fibers_[w.base + __builtin_ctz(bits)].result = r;
    } else if (op != WarpOp::Sync) {
        for (unsigned bits = group; bits; bits &= bits - 1) {
            const unsigned l = __builtin_ctz(bits);
            Fiber& g = fibers_[w.base + l];
            const unsigned wd = (unsigned)g.width;
            const unsigned seg = l & ~(wd - 1), pos = l & (wd - 1);
            unsigned src = 32;  // none: the lane keeps its own value
            switch (op) {
                case WarpOp::Shfl: src = seg + ((unsigned)g.arg & (wd - 1)); break;
                case WarpOp::Up:
                    if ((unsigned)g.arg <= pos) src = l - (unsigned)g.arg;
                    break;
                case WarpOp::Down:
                    if ((unsigned)g.arg < wd - pos) src = l + (unsigned)g.arg;
                    break;
                case WarpOp::Xor: {
                    const unsigned s = l ^ ((unsigned)g.arg & 31u);
                    if (s < seg + wd) src = s;
                    break;
                }
                default: break;
            }
            g.result = (src < 32 && (group >> src) & 1u) ? fibers_[w.base + src].value : g.value;
        }
    }
    w.waiting &= ~group;
    for (unsigned bits = group & ~bit; bits; bits &= bits - 1) push(w.base + __builtin_ctz(bits));
    return f.result;
}

// mma.sync m16n8k8 TF32 with PTX's fragment layouts (lane l, groupID g = l / 4, t = l % 4):
//   A 16×8 (row-major): a[i] = A[g + 8·(i % 2)][t + 4·(i / 2)]
//   B 8×8 (column-major): b[i] = B[t + 4·i][g]
//   C/D 16×8: d[i] = D[g + 8·(i / 2)][2t + i % 2]
// Each product of two TF32 values is exact in float and in double; the 8 products and C are
// summed in double and rounded once. The hardware's internal accumulation order and width are
// not specified (FP32-or-better); tests against a CPU reference allow for summation order.
void Runner::mma_tf32(float* d, const unsigned* a, const unsigned* b) {
    Fiber& f = *current_;
    if (job_->arch < 80)
        fail_on_fiber(format("%s of %s executed mma.sync .tf32, which needs sm_80 or newer; this launch emulates "
                             "sm_%u (choose the FP32 kernels on this card)",
                             thread_name(f).c_str(), block_name().c_str(), job_->arch));
    const Warp& w = warps_[f.warp];
    if (w.existing != 0xffffffffu) {
        fail_on_fiber(format("%s of %s called %s in warp %u, which has only lanes 0x%08x: mma.sync needs all "
                             "32 lanes of a full warp",
                             thread_name(f).c_str(), block_name().c_str(), op_name(WarpOp::Mma), f.warp, w.existing));
    }
    MmaLane lane{d, a, b};
    unsigned long long bits = 0;
    static_assert(sizeof(MmaLane*) <= sizeof bits);
    const MmaLane* p = &lane;
    std::memcpy(&bits, &p, sizeof p);
    (void)warp_collective(WarpOp::Mma, 0xffffffffu, bits, 0, 32, 8);
}

void Runner::complete_mma(const Warp& w) {
    const MmaLane* lanes[32];
    for (unsigned l = 0; l < 32; ++l) {
        std::memcpy(&lanes[l], &fibers_[w.base + l].value, sizeof lanes[l]);
        for (int i = 0; i < 6; ++i) {
            const unsigned v = i < 4 ? lanes[l]->a[i] : lanes[l]->b[i - 4];
            if (v & 0x1fffu) {
                fail_on_fiber(format("%s in warp %u of %s: lane %u passes %s operand %c[%d] = 0x%08x, which is not a "
                                     "tf32 value (low 13 bits set): round it with cvt.rna.tf32.f32 (mg::to_tf32)",
                                     op_name(WarpOp::Mma), (unsigned)(w.base / kWarp), block_name().c_str(), l,
                                     i < 4 ? "an A" : "a B", i < 4 ? 'a' : 'b', i < 4 ? i : i - 4, v));
            }
        }
    }
    auto A = [&](unsigned row, unsigned k) {
        return __builtin_bit_cast(float, lanes[(row % 8) * 4 + k % 4]->a[row / 8 + 2 * (k / 4)]);
    };
    auto B = [&](unsigned k, unsigned col) { return __builtin_bit_cast(float, lanes[col * 4 + k % 4]->b[k / 4]); };
    float out[32][4];
    for (unsigned l = 0; l < 32; ++l) {
        const unsigned g = l / 4, t = l % 4;
        for (unsigned i = 0; i < 4; ++i) {
            const unsigned row = g + 8 * (i / 2), col = 2 * t + i % 2;
            double s = (double)lanes[l]->d[i];
            for (unsigned k = 0; k < 8; ++k) s += (double)A(row, k) * (double)B(k, col);
            out[l][i] = (float)s;
        }
    }
    // Written after every lane's inputs were read (a lane's d may alias nothing else, but C of
    // one lane is read only by that lane; A and B are read by all).
    for (unsigned l = 0; l < 32; ++l)
        for (unsigned i = 0; i < 4; ++i) lanes[l]->d[i] = out[l][i];
}

void Runner::cp_async(void* dst, const void* src, unsigned bytes, unsigned src_bytes) {
    Fiber& f = *current_;
    if (job_->arch < 80)
        fail_on_fiber(format("%s of %s executed cp.async, which needs sm_80 or newer; this launch emulates sm_%u",
                             thread_name(f).c_str(), block_name().c_str(), job_->arch));
    const uintptr_t d = reinterpret_cast<uintptr_t>(dst), s = reinterpret_cast<uintptr_t>(src);
    if ((bytes != 4 && bytes != 8 && bytes != 16) || src_bytes > bytes)
        fail_on_fiber(format("cp.async in %s of %s: copy of %u bytes reading %u (the size must be 4, 8 or 16 and the "
                             "source size at most the size)",
                             thread_name(f).c_str(), block_name().c_str(), bytes, src_bytes));
    if (d % bytes != 0 || (src_bytes > 0 && s % bytes != 0))
        fail_on_fiber(format("cp.async in %s of %s: misaligned %u-byte copy from 0x%llx to 0x%llx (both addresses "
                             "must be multiples of the size)",
                             thread_name(f).c_str(), block_name().c_str(), bytes, (unsigned long long)s,
                             (unsigned long long)d));
    const unsigned char* sh = shared_;
    if (d >= reinterpret_cast<uintptr_t>(sh) && d + bytes > reinterpret_cast<uintptr_t>(sh + job_->shared_bytes) &&
        d < reinterpret_cast<uintptr_t>(sh + kMaxSharedBytes))
        fail_on_fiber(format("cp.async in %s of %s: destination 0x%llx runs past the %u bytes of dynamic shared "
                             "memory of this launch",
                             thread_name(f).c_str(), block_name().c_str(), (unsigned long long)d, job_->shared_bytes));
    f.copies.push_back(Fiber::Copy{dst, src, bytes, src_bytes, f.groups});
}

void Runner::cp_async_wait(unsigned pending) {
    Fiber& f = *current_;
    // Groups 0 .. groups-1 are committed; all but the newest `pending` of them complete.
    const unsigned done = f.groups > pending ? f.groups - pending : 0;
    size_t keep = 0;
    for (size_t i = 0; i < f.copies.size(); ++i) {
        if (f.copies[i].group < done) {
            land(f.copies[i]);
        } else {
            f.copies[keep++] = f.copies[i];
        }
    }
    f.copies.resize(keep);
}

unsigned Runner::activemask(const char* file, unsigned line, unsigned column) {
    Fiber& f = *current_;
    Warp& w = warps_[f.warp];
    f.site_file = file;
    f.site_line = line;
    f.site_column = column;
    f.state = State::Active;
    w.active |= 1u << f.lane;
    if (try_complete_active(w, &f)) {
        f.state = State::Running;
    } else {
        context_switch(f.context, scheduler_);
    }
    return (unsigned)f.result;
}

// Completes the warp's pending __activemask() calls once no other lane of it can still arrive:
// each is exited or suspended. Each waiting lane gets the set of lanes waiting at its call site.
// `caller`: the lane completing it from inside __activemask() (it carries on instead of being
// queued), or null when called from the scheduler.
bool Runner::try_complete_active(Warp& w, const Fiber* caller) {
    for (unsigned bits = w.existing & ~w.exited; bits; bits &= bits - 1) {
        const State s = fibers_[w.base + __builtin_ctz(bits)].state;
        if (s != State::Barrier && s != State::Warp && s != State::Active) return false;
    }
    for (unsigned bits = w.active; bits; bits &= bits - 1) {
        Fiber& g = fibers_[w.base + __builtin_ctz(bits)];
        unsigned same = 0;
        for (unsigned o = w.active; o; o &= o - 1) {
            const Fiber& h = fibers_[w.base + __builtin_ctz(o)];
            if (h.site_line == g.site_line && h.site_column == g.site_column &&
                (h.site_file == g.site_file || std::strcmp(h.site_file, g.site_file) == 0))
                same |= 1u << h.lane;
        }
        g.result = same;
    }
    for (unsigned bits = w.active; bits; bits &= bits - 1) {
        const unsigned i = w.base + __builtin_ctz(bits);
        if (&fibers_[i] != caller) push(i);
    }
    w.active = 0;
    return true;
}

void Runner::describe_deadlock() {
    std::string detail;
    if (bar_count_ > 0)
        detail += format("%u thread%s wait%s at __syncthreads (%s)", bar_count_, bar_count_ == 1 ? "" : "s",
                         bar_count_ == 1 ? "s" : "", barrier_site().c_str());
    for (unsigned wi = 0; wi < warps_.size(); ++wi) {
        const Warp& w = warps_[wi];
        if (!w.waiting) continue;
        const Fiber& g = fibers_[w.base + __builtin_ctz(w.waiting)];
        const unsigned missing = g.mask & w.existing & ~w.waiting;
        if (!detail.empty()) detail += "; ";
        detail += format("warp %u: lanes 0x%08x wait at %s (mask 0x%08x) for lanes 0x%08x", wi, w.waiting,
                         op_name(g.op), g.mask, missing);
    }
    fail(format("deadlock in %s: %u live thread%s, all blocked: %s", block_name().c_str(), live_,
                live_ == 1 ? "" : "s", detail.c_str()));
}

// ---- the OS-thread pool -------------------------------------------------------------------

void work(Job& job) {
    Runner& r = runner();
    r.begin(job);
    uint64_t b;
    while ((b = job.next.fetch_add(1, std::memory_order_relaxed)) < job.total) {
        if (job.failed.load(std::memory_order_relaxed)) continue;  // skip the rest after an error
        r.run_block(job, job.order(b));
    }
}

class Pool {
public:
    explicit Pool(unsigned workers) {
        for (unsigned i = 0; i < workers; ++i) std::thread([this] { worker(); }).detach();
    }

    // Runs every block of `job`, on this thread and the workers; returns when all are done.
    void run(Job& job) {
        {
            std::lock_guard<std::mutex> g(mu_);
            jobs_.push_back(&job);
        }
        work_cv_.notify_all();
        work(job);
        std::unique_lock<std::mutex> g(mu_);
        for (auto it = jobs_.begin(); it != jobs_.end(); ++it) {
            if (*it == &job) {
                jobs_.erase(it);
                break;
            }
        }
        done_cv_.wait(g, [&] { return job.users == 0; });
    }

private:
    void worker() {
        std::unique_lock<std::mutex> g(mu_);
        for (;;) {
            Job* job = nullptr;
            for (Job* j : jobs_) {
                if (j->next.load(std::memory_order_relaxed) < j->total) {
                    job = j;
                    break;
                }
            }
            if (!job) {
                work_cv_.wait(g);
                continue;
            }
            ++job->users;
            g.unlock();
            work(*job);
            g.lock();
            if (--job->users == 0) done_cv_.notify_all();
        }
    }

    std::mutex mu_;
    std::condition_variable work_cv_, done_cv_;
    std::deque<Job*> jobs_;
};

Pool& pool() {
    // Never destroyed: detached workers wait on its mutex until the process ends.
    static Pool* p = new Pool(pool_threads() - 1);
    return *p;
}

int set_error(std::string message) {
    t_last_error = std::move(message);
    return 1;
}

// Per-kernel dynamic shared memory maxima set by the launcher (the CUfunction attribute).
std::mutex g_shared_mu;
std::vector<std::pair<std::string, unsigned>> g_shared_max;

unsigned max_dynamic_shared(const char* name) {
    std::lock_guard<std::mutex> g(g_shared_mu);
    for (const auto& [k, v] : g_shared_max)
        if (k == name) return v;
    return kDefaultSharedBytes;
}

}  // namespace

// ---- entry points -------------------------------------------------------------------------

namespace detail {
void syncthreads(const char* file, unsigned line, unsigned column) {
    t_runner->syncthreads(file, line, column);
}
unsigned long long warp_collective(WarpOp op, unsigned mask, unsigned long long bits, int arg, int width,
                                   int bytes) {
    return t_runner->warp_collective(op, mask, bits, arg, width, bytes);
}
unsigned activemask(const char* file, unsigned line, unsigned column) {
    return t_runner->activemask(file, line, column);
}
void* dynamic_shared() {
    return t_runner->dynamic_shared();
}
void mma_tf32_m16n8k8(float* d, const unsigned* a, const unsigned* b) {
    t_runner->mma_tf32(d, a, b);
}
void cp_async(void* dst, const void* src, unsigned bytes, unsigned src_bytes) {
    t_runner->cp_async(dst, src, bytes, src_bytes);
}
void cp_async_commit() {
    t_runner->cp_async_commit();
}
void cp_async_wait(unsigned pending) {
    t_runner->cp_async_wait(pending);
}
}  // namespace detail

int launch_error(const char* name, const char* message) {
    return set_error(format("kernel %s: %s", name, message));
}

int run_grid(const char* name, const unsigned* grid, const unsigned* block, unsigned shared_bytes, Entry entry,
             const void* closure) {
    if (!grid || !block) return launch_error(name, "grid or block dimensions are NULL");
    const dim3 g(grid[0], grid[1], grid[2]), b(block[0], block[1], block[2]);
    if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535)
        return set_error(format("kernel %s: grid (%u,%u,%u) is invalid (each dimension at least 1; at most "
                                "2^31-1, 65535, 65535)",
                                name, g.x, g.y, g.z));
    const uint64_t threads = uint64_t(b.x) * b.y * b.z;
    if (b.x == 0 || b.y == 0 || b.z == 0 || b.x > 1024 || b.y > 1024 || b.z > 64 || threads > kMaxBlockThreads)
        return set_error(format("kernel %s: block (%u,%u,%u) is invalid: %llu threads (each dimension at least 1; "
                                "at most 1024, 1024, 64 and %u threads in all)",
                                name, b.x, b.y, b.z, (unsigned long long)threads, kMaxBlockThreads));
    if (shared_bytes > kDefaultSharedBytes) {
        const unsigned allowed = std::min(max_dynamic_shared(name), t_optin_bytes);
        if (shared_bytes > allowed)
            return set_error(format("kernel %s: %u bytes of dynamic shared memory requested; the limit is %u "
                                    "(48 KiB without the opt-in: set the kernel's maximum first, "
                                    "cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) on a "
                                    "GPU, moodgrad_sim_set_max_dynamic_shared here; at most %u on the emulated "
                                    "sm_%u)",
                                    name, shared_bytes, allowed, t_optin_bytes, t_arch));
    }
    if (detail::t_thread != nullptr)
        return set_error(format("kernel %s: launched from inside a kernel", name));

    Job job;
    job.name = name;
    job.entry = entry;
    job.closure = closure;
    job.grid = g;
    job.block = b;
    job.shared_bytes = shared_bytes;
    job.arch = t_arch;
    job.total = uint64_t(g.x) * g.y * g.z;
    job.schedule = current_schedule();
    if (job.schedule.shuffle) job.order = BlockOrder(job.total, splitmix64(job.schedule.seed ^ hash_name(name)));
    if (job.total == 1 || pool_threads() == 1) {
        work(job);
    } else {
        pool().run(job);
    }
    if (job.failed.load()) return set_error(std::move(job.error));
    return 0;
}

}  // namespace sim

// ---- misaligned accesses ------------------------------------------------------------------
// engine/build.rs compiles with -fsanitize=alignment -fno-sanitize-recover=alignment: every pointer
// dereference checks the type's alignment and calls the handler below on a misaligned address
// (no libubsan: these definitions are the whole runtime). The layouts are GCC's/compiler-rt's
// "v1" type-mismatch data.
namespace {
struct UbsanLocation {
    const char* file;
    unsigned line, column;
};
struct UbsanType {
    unsigned short kind, info;
    char name[1];
};
struct UbsanMismatch {
    UbsanLocation loc;
    const UbsanType* type;
    unsigned char log_alignment, check_kind;
};
const char* check_kind_name(unsigned k) {
    static const char* const names[] = {"load of",      "store to",         "reference binding to",
                                        "member access within", "member call on", "constructor call on",
                                        "downcast of",  "downcast of",      "upcast of",
                                        "cast to virtual base of", "_Nonnull binding to", "dynamic operation on"};
    return k < sizeof names / sizeof names[0] ? names[k] : "access to";
}
[[noreturn]] void misaligned(void* raw, uintptr_t ptr) {
    const UbsanMismatch* d = static_cast<const UbsanMismatch*>(raw);
    const unsigned long align = 1ul << d->log_alignment;
    const std::string what =
        sim::format("misaligned %s address 0x%llx for type %s, which needs %lu-byte alignment (address %% %lu = %llu), "
                    "at %s:%u:%u",
                    ptr ? check_kind_name(d->check_kind) : "null-pointer", (unsigned long long)ptr,
                    d->type ? d->type->name : "?", align, align, (unsigned long long)(ptr % align),
                    sim::short_file(d->loc.file ? d->loc.file : "?"), d->loc.line, d->loc.column);
    sim::misaligned_on_fiber(what);
}
}  // namespace

extern "C" void __ubsan_handle_type_mismatch_v1_abort(void* data, uintptr_t ptr) {
    misaligned(data, ptr);
}
extern "C" void __ubsan_handle_type_mismatch_v1(void* data, uintptr_t ptr) {
    misaligned(data, ptr);
}

// The calling thread's schedule for its next launches: mode 0 = the process default
// (MOODGRAD_SIM_SHUFFLE), 1 = thread order, 2 = shuffled with `seed`.
extern "C" void moodgrad_sim_set_schedule(int mode, unsigned long long seed) {
    sim::t_override = mode;
    sim::t_override_seed = seed;
}

// The calling thread's effective schedule: returns 1 and sets *seed when shuffled, else 0.
extern "C" int moodgrad_sim_schedule(unsigned long long* seed) {
    const sim::Schedule s = sim::current_schedule();
    if (seed) *seed = s.shuffle ? s.seed : 0;
    return s.shuffle ? 1 : 0;
}

// cuFuncSetAttribute(kernel, MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes): launches of `name` may then
// ask for up to `bytes` of dynamic shared memory. 0, or 1 (message in moodgrad_sim_last_error)
// when `bytes` exceeds sm_90's 227 KiB per block.
extern "C" int moodgrad_sim_set_max_dynamic_shared(const char* name, unsigned bytes) {
    if (bytes > sim::t_optin_bytes)
        return sim::set_error(sim::format("kernel %s: %u bytes of dynamic shared memory exceed the %u a block may "
                                          "have on the emulated sm_%u",
                                          name, bytes, sim::t_optin_bytes, sim::t_arch));
    std::lock_guard<std::mutex> g(sim::g_shared_mu);
    for (auto& [k, v] : sim::g_shared_max) {
        if (k == name) {
            v = bytes;
            return 0;
        }
    }
    sim::g_shared_max.emplace_back(name, bytes);
    return 0;
}

// The card this thread's next launches and opt-ins emulate: compute capability (major·10 + minor)
// and the per-block dynamic shared memory opt-in limit (at most sm_90's 227 KiB).
extern "C" void moodgrad_sim_set_arch(unsigned arch, unsigned optin_bytes) {
    sim::t_arch = arch;
    sim::t_optin_bytes = std::min(optin_bytes, sim::kMaxSharedBytes);
}

extern "C" const char* moodgrad_sim_last_error() {
    return sim::t_last_error.c_str();
}
