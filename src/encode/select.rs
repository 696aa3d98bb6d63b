//! Encoder selection: the first candidate whose test encode succeeds.

use super::table::check_settings;
use super::{
    candidates, describe, family_candidates, EncodeError, EncodeSettings, EncoderName, EncoderPlan,
    Platform, Prober, Skipped,
};

/// The chosen encoder, and the candidates tried before it.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub plan: EncoderPlan,
    /// Candidates tried before the chosen one, each with the reason it was
    /// skipped, as `<factory>: <reason>`.
    pub skipped: Vec<(EncoderName, String)>,
}

/// Picks the encoder: tries each candidate in order with a test encode and
/// returns the first that works.
///
/// `EncoderName::Auto` tries every candidate of `platform`. Any other name
/// tries only that family's factories, on any platform, and fails if none
/// of them works.
pub fn select(
    request: EncoderName,
    platform: Platform,
    settings: &EncodeSettings,
    prober: &dyn Prober,
) -> Result<Selection, EncodeError> {
    let to_try = match request {
        EncoderName::Auto => candidates(platform),
        family => family_candidates(family),
    };
    select_from(request, &to_try, settings, prober)
}

/// Picks the encoder that replaces `failed`, a factory that failed
/// mid-stream: the first candidate after it, in the order `select` tries
/// them, whose test encode succeeds. The failed factory is never tried
/// again, since its test encode may pass while the stream still fails.
pub fn select_after(
    request: EncoderName,
    platform: Platform,
    settings: &EncodeSettings,
    prober: &dyn Prober,
    failed: &str,
) -> Result<Selection, EncodeError> {
    let to_try = match request {
        EncoderName::Auto => candidates(platform),
        family => family_candidates(family),
    };
    let after = to_try
        .iter()
        .position(|candidate| candidate.factory == failed)
        .map_or(0, |index| index + 1);
    select_from(request, &to_try[after..], settings, prober)
}

fn select_from(
    request: EncoderName,
    to_try: &[super::Candidate],
    settings: &EncodeSettings,
    prober: &dyn Prober,
) -> Result<Selection, EncodeError> {
    let mut skipped: Vec<Skipped> = Vec::new();
    for candidate in to_try {
        let plan = describe(candidate, settings);
        let outcome =
            check_settings(candidate, settings).and_then(|()| prober.test_encode(&plan, settings));
        match outcome {
            Ok(()) => {
                tracing::info!(
                    encoder = %candidate.name,
                    factory = candidate.factory,
                    chain = %plan.chain,
                    skipped = skipped.len(),
                    "H.264 encoder selected"
                );
                let skipped = skipped
                    .into_iter()
                    .map(|skip| (skip.name, format!("{}: {}", skip.factory, skip.reason)))
                    .collect();
                return Ok(Selection { plan, skipped });
            }
            Err(reason) => {
                tracing::info!(
                    encoder = %candidate.name,
                    factory = candidate.factory,
                    %reason,
                    "H.264 encoder skipped"
                );
                skipped.push(Skipped {
                    name: candidate.name,
                    factory: candidate.factory,
                    reason,
                });
            }
        }
    }

    Err(match request {
        EncoderName::Auto => EncodeError::NoUsableEncoder { skipped },
        name => EncodeError::ForcedEncoderUnusable { name, skipped },
    })
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
