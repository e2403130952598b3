//! Reads `cuobjdump -sass` listings: the functions of a cubin, each with its target and its
//! instructions' opcodes, so tests can ask what the GPU actually executes (tensor-core `HMMA`,
//! local-memory `LDL`/`STL`) rather than what the source hoped for.

/// One function of a SASS listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SassFunction {
    pub name: String,
    /// The listing's "code for sm_XX" target, e.g. "sm_90".
    pub arch: String,
    /// Full opcodes in order, predicates removed: "HMMA.1688.F32.TF32", "LDGSTS.E.BYPASS.128".
    pub opcodes: Vec<String>,
}

impl SassFunction {
    /// How many instructions have base opcode `op` (the part before the first '.').
    pub fn count(&self, op: &str) -> usize {
        self.opcodes.iter().filter(|o| o.split('.').next() == Some(op)).count()
    }
}

/// The opcode of an instruction line (`/*0130*/  @!P0 LDGSTS.E.BYPASS.128 [R5], ... ;  /* 0x... */`);
/// None for other lines (encoding halves, headers, blank lines).
fn opcode(line: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix("/*")?;
    let (addr, rest) = rest.split_once("*/")?;
    if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut words = rest.split_whitespace();
    let mut op = words.next()?;
    if op.starts_with('@') {
        op = words.next()?;
    }
    let op = op.trim_end_matches(';');
    (!op.is_empty()).then(|| op.to_string())
}

/// Splits a `cuobjdump -sass` listing into its functions.
pub fn parse_sass(listing: &str) -> Vec<SassFunction> {
    let mut out: Vec<SassFunction> = Vec::new();
    let mut arch = String::new();
    for line in listing.lines() {
        let t = line.trim();
        if let Some(a) = t.strip_prefix("code for ") {
            arch = a.trim().to_string();
        } else if let Some(name) = t.strip_prefix("Function : ") {
            out.push(SassFunction { name: name.trim().to_string(), arch: arch.clone(), opcodes: Vec::new() });
        } else if let (Some(op), Some(f)) = (opcode(line), out.last_mut()) {
            f.opcodes.push(op);
        }
    }
    out
}

/// One function of a `cuobjdump -res-usage` listing (read from the cubin itself, so an
/// independent check of what ptxas reported).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResUsage {
    pub name: String,
    pub registers: u32,
    pub stack: u32,
    /// Static shared memory plus what the architecture reserves per block (1 KiB on sm_90).
    pub shared: u32,
    pub local: u32,
}

/// Reads ` Function name:` / `  REG:28 STACK:0 SHARED:1280 LOCAL:0 CONSTANT[0]:560 ...` pairs;
/// Err when a function's line lacks one of the four figures.
pub fn parse_res_usage(listing: &str) -> Result<Vec<ResUsage>, String> {
    let mut out = Vec::new();
    let mut name: Option<&str> = None;
    for line in listing.lines() {
        let t = line.trim();
        if let Some(n) = t.strip_prefix("Function ").and_then(|n| n.strip_suffix(':')) {
            name = Some(n);
        } else if let Some(n) = name.take() {
            let field = |key: &str| -> Result<u32, String> {
                t.split_whitespace()
                    .find_map(|w| w.strip_prefix(key)?.parse().ok())
                    .ok_or_else(|| format!("cuobjdump -res-usage: no {key} for {n}: {t}"))
            };
            out.push(ResUsage {
                name: n.to_string(),
                registers: field("REG:")?,
                stack: field("STACK:")?,
                shared: field("SHARED:")?,
                local: field("LOCAL:")?,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Excerpt of cuobjdump 13.2.86 output for a cubin of ptxas 13.0.88 (a throwaway kernel with
    // one cp.async and an mma.sync.m16n8k8 tf32 loop), trimmed.
    const LISTING: &str = "
	code for sm_90
	.target	sm_90

		Function : plain_fp32
	.headerflags	@\"EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)\"
        /*0000*/                   LDC R1, c[0x0][0x28] ;                     /* 0x00000a00ff017b82 */
                                                                              /* 0x000ff00000000800 */
        /*0040*/               @P0 EXIT ;                                     /* 0x000000000000094d */
                                                                              /* 0x000fea0003800000 */
		..........


		Function : demo_tf32
	.headerflags	@\"EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)\"
        /*0130*/                   LDGSTS.E.BYPASS.128 [R5], desc[UR6][R2.64] ;   /* 0x0000000002057fae */
        /*05b0*/                   HMMA.1688.F32.TF32 R20, R12, R4, R20 ;         /* 0x000000040c14723c */
        /*0670*/              @!P1 HMMA.1688.F32.TF32 R20, R4, R8, R20 ;          /* 0x000000080414723c */
        /*0680*/                   STL [R1], R3 ;                                 /* 0x0000000301007387 */
";

    #[test]
    fn splits_functions_and_reads_opcodes() {
        let f = parse_sass(LISTING);
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].name.as_str(), f[0].arch.as_str()), ("plain_fp32", "sm_90"));
        assert_eq!(f[0].opcodes, ["LDC", "EXIT"]);
        assert_eq!(f[1].opcodes[0], "LDGSTS.E.BYPASS.128");
        assert_eq!((f[1].count("HMMA"), f[1].count("STL"), f[1].count("LDL")), (2, 1, 0));
        assert_eq!(f[0].count("HMMA"), 0);
    }

    #[test]
    fn reads_res_usage() {
        // Verbatim cuobjdump 13.2.86 -res-usage output for kernels/reduce.cu's cubin (first lines).
        let text = "\nResource usage:\n Common:\n  GLOBAL:0\n Function sum_squares_multi:\n  REG:28 STACK:0 SHARED:1280 LOCAL:0 CONSTANT[0]:560 TEXTURE:0 SURFACE:0 SAMPLER:0\n Function sum_rows:\n  REG:32 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:552 TEXTURE:0 SURFACE:0 SAMPLER:0\n";
        let r = parse_res_usage(text).unwrap();
        assert_eq!(
            r[0],
            ResUsage { name: "sum_squares_multi".into(), registers: 28, stack: 0, shared: 1280, local: 0 }
        );
        assert_eq!((r[1].name.as_str(), r[1].registers, r[1].shared), ("sum_rows", 32, 0));
        assert!(parse_res_usage(" Function f:\n  REG:1 STACK:0\n").is_err());
    }
}
