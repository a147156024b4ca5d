//! The meter as staff and sites see it outside a decision: a subject's meter now, and a device's
//! free views joining the account's meter when its reader signs in.

use super::AccessService;
use crate::domain::{Audience, MeterState, MeterSubject, ReaderId};
use crate::store::{MergeReport, StoreError};

impl AccessService {
    /// A subject's meter now, as staff views show it: kept for `entitlement_cache_ttl` like
    /// entitlements, forgotten whenever this instance counts or moves one of the subject's
    /// articles.
    pub async fn meter(&self, subject: &MeterSubject) -> Result<MeterState, StoreError> {
        let policy = self.settings.meter_policy(subject.audience);
        let window = policy.window(self.clock.now());
        let usage = match self.cache.meter(subject, &window) {
            Some(usage) => usage,
            None => {
                let usage = self.store.meter_usage(subject, None, &window).await?;
                self.cache.put_meter(subject, window, usage);
                usage
            }
        };
        Ok(policy.state(&window, &usage))
    }

    /// Moves the device's unlocks of its current period into the reader's meter, never beyond
    /// the reader's limit.
    pub async fn merge(
        &self,
        reader: &ReaderId,
        device: &ReaderId,
    ) -> Result<(MergeReport, MeterState), StoreError> {
        let now = self.clock.now();
        let reader_policy = self.settings.meter_policy(Audience::Registered);
        let device_policy = self.settings.meter_policy(Audience::Anonymous);
        let reader_window = reader_policy.window(now);
        let report = self
            .store
            .merge_meter(
                &MeterSubject::device(device.clone()),
                &device_policy.window(now),
                &MeterSubject::reader(reader.clone()),
                &reader_window,
                reader_policy.limit,
            )
            .await?;
        self.cache
            .forget_meter(&MeterSubject::device(device.clone()));
        self.cache
            .forget_meter(&MeterSubject::reader(reader.clone()));
        let meter = reader_policy.state(&reader_window, &report.usage);
        Ok((report, meter))
    }
}
