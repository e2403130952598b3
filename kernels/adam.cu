// One Adam/AdamW step of one tensor, fused with gradient scaling (the clip coefficient) and
// weight decay: a single pass reading w, g, m, v and writing w, m, v.
#include "common.cuh"
#include "device.cuh"

// Per element, in float, in exactly the order of engine/src/backend/cpu/adam.rs (torch's single-tensor
// Adam; the comments give the torch call each line mirrors):
//   g ← g·grad_scale;  decoupled: w ← w·decay (decay = 1 − lr·wd)  else if wd ≠ 0: g ← g + wd·w
//   m ← m + (1−β1)(g − m);  v ← v·β2 + (1−β2)·g·g;  w ← w − step_size·(m / (sqrt(v)/bc2_sqrt + eps))
// step_size = lr/(1−β1^t), bc2_sqrt = sqrt(1−β2^t), 1−β1 and 1−β2 all come from the host, computed
// in double and rounded once (1 − (float)β1 in float would be off by up to 2.4e-7 relative for
// β1 = 0.9). sqrtf and '/' are IEEE-rounded (nvcc's default -prec-sqrt/-prec-div);
// nvcc may fuse a multiply-add (≤ 1 ulp from the CPU's separate rounding).
extern "C" __global__ void adam_update(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m,
                                       float* __restrict__ v, int n, float step_size, float one_minus_beta1, float beta2,
                                       float one_minus_beta2, float eps, float weight_decay, int decoupled, float bc2_sqrt,
                                       float grad_scale, float decay) {
    const float b1c = one_minus_beta1, b2c = one_minus_beta2;
    for (unsigned i = mg::ew_start(); i < (unsigned)n; i += mg::ew_stride()) {
        float wi = w[i];
        float gi = g[i] * grad_scale;  // clip_grad_norm_ scales the stored gradient first
        if (decoupled) {
            wi *= decay;  // AdamW: param.mul_(1 - lr*wd)
        } else if (weight_decay != 0.0f) {
            gi += weight_decay * wi;  // grad = grad.add(param, alpha=wd)
        }
        float mi = m[i];
        mi += b1c * (gi - mi);  // exp_avg.lerp_(grad, 1 - beta1)
        const float vi = v[i] * beta2 + b2c * gi * gi;  // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
        const float denom = sqrtf(vi) / bc2_sqrt + eps;
        wi -= step_size * (mi / denom);  // param.addcdiv_(exp_avg, denom, value=-step_size)
        w[i] = wi;
        m[i] = mi;
        v[i] = vi;
    }
}

SIM_EXPORT(adam_update)
