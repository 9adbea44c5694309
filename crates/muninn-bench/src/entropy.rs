//! The entropy floor: how many bytes per span the generator's random choices are worth, which
//! no lossless format can store the spans in fewer bytes than; the bytes at rest are printed
//! against it. A store keeps a set of spans, not a sequence, so it need not keep their order:
//! the floor of the set, lower by log2(N!)/N bits a span, is printed beside it. The formula is
//! in the crate documentation (`main.rs`); the parameters are the generator's own
//! (`workload.rs`).

use crate::workload::{
    CLIENT_VERSIONS, CONSUMER_DURATION_NANOS, CONSUMER_LAG_NANOS, EVENT_TYPES, FAILED_ONE_IN,
    KAFKA_PARTITIONS, MAX_RANDOM_CONSUMERS, NEW_TRACE_ONE_IN, PRODUCER_DURATION_NANOS, REGIONS,
    STREAMS, TENANT_TIERS, WINDOW_NANOS, Workload,
};

/// Bits of a uniform choice among `n`.
fn log2(n: f64) -> f64 {
    n.log2()
}

/// Bits of a yes/no that is yes with probability `p`.
fn binary_entropy(p: f64) -> f64 {
    if p <= 0.0 || p >= 1.0 {
        return 0.0;
    }
    -p * p.log2() - (1.0 - p) * (1.0 - p).log2()
}

fn range_len(range: std::ops::Range<i64>) -> f64 {
    (range.end - range.start) as f64
}

/// One kind of value, in expected bits per event.
#[derive(Debug, Clone)]
pub(crate) struct Term {
    pub name: &'static str,
    /// An event built in full.
    pub fresh_bits: f64,
    /// An event of a template copy: only ids and the producer's start are drawn anew; lags,
    /// durations and every choice repeat the template's.
    pub copy_bits: f64,
}

/// The floor of one run.
#[derive(Debug, Clone)]
pub(crate) struct EntropyFloor {
    pub workload: Workload,
    pub terms: Vec<Term>,
    pub spans_per_event: f64,
    /// Share of the spans that are template copies.
    pub copy_share: f64,
    /// Spans stored: what the order of the spans is worth depends on it.
    pub n_spans: u64,
}

impl EntropyFloor {
    /// The floor of `n_spans` spans of `workload` when `copy_share` of them are template copies.
    pub(crate) fn of(workload: Workload, copy_share: f64, n_spans: u64) -> EntropyFloor {
        // Reference: 1–3 consumers; ids with their last bit set (127 and 63 random bits).
        // Random: 0–5 consumers; ids uniform but for all-zero (128 and 64 bits); a consumer
        // starts a trace of its own with probability 1/4.
        let (n_consumer_counts, consumers, id_bits_fixed, new_trace_share) = match workload {
            Workload::Reference => (3.0, 2.0, 1.0, 0.0),
            Workload::Random => (
                (MAX_RANDOM_CONSUMERS + 1) as f64,
                MAX_RANDOM_CONSUMERS as f64 / 2.0,
                0.0,
                1.0 / f64::from(NEW_TRACE_ONE_IN),
            ),
        };
        let spans = 1.0 + consumers;
        let traces = 1.0 + consumers * new_trace_share;
        let kafka_share = EVENT_TYPES
            .iter()
            .filter(|event_type| STREAMS[event_type.stream_idx].broker == "kafka")
            .count() as f64
            / EVENT_TYPES.len() as f64;
        let choices = log2(EVENT_TYPES.len() as f64)
            + log2(n_consumer_counts)
            + consumers * binary_entropy(new_trace_share)
            + kafka_share * log2(f64::from(KAFKA_PARTITIONS))
            + log2(TENANT_TIERS.len() as f64)
            + spans * (log2(REGIONS.len() as f64) + log2(CLIENT_VERSIONS.len() as f64))
            + consumers * binary_entropy(1.0 / f64::from(FAILED_ONE_IN));
        let both = |name, bits: f64| Term {
            name,
            fresh_bits: bits,
            copy_bits: bits,
        };
        let fresh_only = |name, bits: f64| Term {
            name,
            fresh_bits: bits,
            copy_bits: 0.0,
        };
        let terms = vec![
            both("trace ids", traces * (128.0 - id_bits_fixed)),
            both("span ids", spans * (64.0 - id_bits_fixed)),
            both("parents, links", 0.0),
            both("event ids", 122.0),
            // 12 random bytes with the last bit set.
            both("message ids", 95.0),
            both("producer starts", log2(WINDOW_NANOS as f64)),
            fresh_only(
                "consumer lags",
                consumers * log2(range_len(CONSUMER_LAG_NANOS)),
            ),
            fresh_only(
                "durations",
                log2(range_len(PRODUCER_DURATION_NANOS))
                    + consumers * log2(range_len(CONSUMER_DURATION_NANOS)),
            ),
            fresh_only("choices", choices),
        ];
        EntropyFloor {
            workload,
            terms,
            spans_per_event: spans,
            copy_share: copy_share.clamp(0.0, 1.0),
            n_spans,
        }
    }

    /// Bits per span of one term over the run (fresh and copied spans in their shares).
    fn term_bits_per_span(&self, term: &Term) -> f64 {
        ((1.0 - self.copy_share) * term.fresh_bits + self.copy_share * term.copy_bits)
            / self.spans_per_event
    }

    /// Bytes per span of spans built in full.
    pub(crate) fn fresh_bytes_per_span(&self) -> f64 {
        self.terms.iter().map(|term| term.fresh_bits).sum::<f64>() / self.spans_per_event / 8.0
    }

    /// Bytes per span of template copies.
    pub(crate) fn copy_bytes_per_span(&self) -> f64 {
        self.terms.iter().map(|term| term.copy_bits).sum::<f64>() / self.spans_per_event / 8.0
    }

    /// The floor of the run, in bytes per span.
    pub(crate) fn bytes_per_span(&self) -> f64 {
        self.terms
            .iter()
            .map(|term| self.term_bits_per_span(term))
            .sum::<f64>()
            / 8.0
    }

    /// Bits per span that the order of `n_spans` distinct spans is worth, log2(N!)/N (by
    /// Stirling: log2 N − log2 e + log2(2πN)/2N): what a store that keeps them as a set (sorted
    /// by trace id, say) does not need to store.
    pub(crate) fn order_bits_per_span(&self) -> f64 {
        if self.n_spans < 2 {
            return 0.0;
        }
        let n = self.n_spans as f64;
        n.log2() - std::f64::consts::LOG2_E + (2.0 * std::f64::consts::PI * n).log2() / (2.0 * n)
    }

    /// The floor of the spans as a set: the floor less what their order is worth.
    pub(crate) fn set_bytes_per_span(&self) -> f64 {
        (self.bytes_per_span() - self.order_bits_per_span() / 8.0).max(0.0)
    }

    /// The lines printed beside the bytes at rest.
    pub(crate) fn describe(&self, at_rest_bytes_per_span: f64) -> Vec<String> {
        let terms = self
            .terms
            .iter()
            .map(|term| format!("{} {:.1}", term.name, self.term_bits_per_span(term)))
            .collect::<Vec<_>>()
            .join(", ");
        let floor = self.bytes_per_span();
        let mut lines = vec![
            format!(
                "entropy floor of the {:?} workload, bits per span: {terms}",
                self.workload
            )
            .to_lowercase(),
            format!(
                "entropy floor: {floor:.1} B/span; at rest {at_rest_bytes_per_span:.1} B/span ({:.2} ×)",
                at_rest_bytes_per_span / floor.max(1e-9)
            ),
        ];
        let set_floor = self.set_bytes_per_span();
        lines.push(format!(
            "  as a set (a store need not keep the spans' order, worth log2(N!)/N = {:.1} bits a span at N = {}): {set_floor:.1} B/span; at rest {:.2} × that",
            self.order_bits_per_span(),
            crate::report::thousands(self.n_spans),
            at_rest_bytes_per_span / set_floor.max(1e-9)
        ));
        if self.copy_share > 0.0 {
            lines.push(format!(
                "  ({:.0}% of the spans are template copies, whose lags, durations and choices repeat: {:.1} B/span for them, {:.1} B/span for spans built in full)",
                self.copy_share * 100.0,
                self.copy_bytes_per_span(),
                self.fresh_bytes_per_span()
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floors_follow_the_formula() {
        // Reference, per event of 3 spans: 127 + 3×63 + 122 + 95 + log2(1.8e12) + 2×log2(7.98e8)
        // + log2(2.9e6) + 2×log2(2.45e7) + choices (log2 20 + log2 3 + 0.65×log2 12 + log2 3
        // + 3×(2 + log2 5) + 2×H(1/200)).
        let reference = EntropyFloor::of(Workload::Reference, 0.0, 0);
        let choices = 20f64.log2()
            + 3f64.log2()
            + 0.65 * 12f64.log2()
            + 3f64.log2()
            + 3.0 * (2.0 + 5f64.log2())
            + 2.0 * binary_entropy(0.005);
        let bits = 127.0
            + 3.0 * 63.0
            + 122.0
            + 95.0
            + 1.8e12f64.log2()
            + 2.0 * 7.98e8f64.log2()
            + 2.9e6f64.log2()
            + 2.0 * 2.45e7f64.log2()
            + choices;
        assert!((reference.bytes_per_span() - bits / 3.0 / 8.0).abs() < 1e-9);
        // Random: 3.5 spans and 1.625 traces an event, full 128- and 64-bit ids.
        let random = EntropyFloor::of(Workload::Random, 0.0, 0);
        let trace_term = &random.terms[0];
        assert!((trace_term.fresh_bits - 1.625 * 128.0).abs() < 1e-9);
        assert!((random.spans_per_event - 3.5).abs() < 1e-9);
        // Copies repeat all but ids and starts, so they are worth less; a run in between.
        let half = EntropyFloor::of(Workload::Random, 0.5, 0);
        assert!(random.copy_bytes_per_span() < random.fresh_bytes_per_span());
        let expected = (random.copy_bytes_per_span() + random.fresh_bytes_per_span()) / 2.0;
        assert!((half.bytes_per_span() - expected).abs() < 1e-9);
        // The order of a set of N spans: log2(N!)/N bits a span (log2 1000! = 8529.4).
        let thousand = EntropyFloor::of(Workload::Random, 0.0, 1000);
        assert!((thousand.order_bits_per_span() - 8.5294).abs() < 1e-3);
        assert!(
            (thousand.set_bytes_per_span() - (random.bytes_per_span() - 8.5294 / 8.0)).abs() < 1e-3
        );
    }
}
