//! `intune-rotate doctor`: before the first run on a tenant, who signs in and what the tenant
//! really answers, belief by belief (docs/doctor.md). Read-only.

use super::Failure;
use crate::cli::{DoctorArgs, TextOrJson};
use crate::exit_status::ExitStatus;
use rotation::{Belief, Verdict};

pub async fn run(a: DoctorArgs) -> Result<ExitStatus, Failure> {
    let (c, who) = super::whoami::identity(&a.connection).await?;
    let findings = rotation::doctor(&c.client, who.claims.as_ref()).await;
    // Exit 1 when a planned run would silently miss something; adapted forms are fine.
    let status = if findings.iter().any(|f| f.verdict == Verdict::Misses) {
        ExitStatus::Incomplete
    } else {
        ExitStatus::Success
    };
    match a.format {
        TextOrJson::Json => {
            let doc = serde_json::json!({"identity": who.json, "findings": findings});
            println!("{doc}");
        }
        TextOrJson::Text => {
            print!("{}", who.text);
            println!();
            for f in &findings {
                println!("{:<8} {}", verdict(f.verdict), belief(f.belief));
                println!("         tenant: {}", f.answered);
                println!("         engine: {}", f.engine);
            }
        }
    }
    Ok(status)
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Holds => "ok",
        Verdict::Adapted => "adapted",
        Verdict::Untested => "untested",
        Verdict::Misses => "MISSES",
    }
}

fn belief(b: Belief) -> &'static str {
    match b {
        Belief::ActionPermissions => "the token's permissions allow the actions (per action page)",
        Belief::ListedActionResults => "device listings carry deviceActionResults",
        Belief::EncryptionReportJoin => "the encryption report joins to devices by id",
        Belief::OsVersionForms => "osVersion is readable on Macs and PCs",
        Belief::GroupMemberCasts => "group member casts are served (advanced query)",
        Belief::SecondSourceShapes => "LAPS backups and recovery keys are readable",
        Belief::DeviceFilters => "device listings apply the operatingSystem filter",
        Belief::AuditLogs => "the audit logs are readable, and keep reads long enough",
        Belief::ViewActivities => "Intune's audit names FileVault and Recovery Lock views",
        Belief::MacScripts => "Mac scripts are found in shell script collections",
    }
}
