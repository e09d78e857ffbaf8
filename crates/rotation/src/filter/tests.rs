use super::*;
use proptest::prelude::*;
use serde_json::json;

fn mac() -> serde_json::Value {
    json!({
        "id": "3f1c2a9e-5b7d-4e21-9a64-0c8e7d5f1b23",
        "deviceName": "MAC-Finance-014",
        "operatingSystem": "macOS",
        "isEncrypted": true,
        "deviceEnrollmentType": "appleBulkWithUser",
        "managedDeviceOwnerType": "company",
        "lastSyncDateTime": "2026-11-20T08:30:00.1234567Z",
        "totalStorageSpaceInBytes": 494384795648_i64,
        "notes": null,
    })
}

fn check(filter: &str) -> bool {
    Filter::parse(filter)
        .unwrap_or_else(|e| panic!("{filter}: {e}"))
        .matches(&mac())
}

#[test]
fn comparisons_follow_each_propertys_type() {
    assert!(check("operatingSystem eq 'macOS'"));
    assert!(
        check("OperatingSystem EQ 'MACOS'"),
        "names and text ignore case"
    );
    assert!(!check("operatingSystem ne 'macOS'"));
    assert!(check("isEncrypted eq true"));
    assert!(check("totalStorageSpaceInBytes gt 100000000000"));
    assert!(check("lastSyncDateTime lt 2026-11-21T00:00:00Z"));
    assert!(check("lastSyncDateTime ge 2026-11-20T10:00:00+02:00"));
    assert!(check("lastSyncDateTime gt 2026-11-20"));
    assert!(check(
        "managedDeviceOwnerType eq microsoft.graph.managedDeviceOwnerType'company'"
    ));
    assert!(check("deviceEnrollmentType eq 'appleBulkWithUser'"));
}

#[test]
fn logic_functions_and_null_behave_as_in_odata() {
    assert!(check(
        "operatingSystem eq 'Windows' or (startswith(deviceName,'mac-fin') and not isEncrypted eq false)"
    ));
    assert!(check(
        "contains(deviceName,'finance') and endswith(deviceName,'014')"
    ));
    assert!(check("notes eq null"));
    assert!(!check("notes ne null"));
    assert!(!check("notes gt 'a'"), "ordering against null is false");
    assert!(check("not (notes gt 'a')"));
    assert!(!check("skuFamily eq 'x'"), "an absent property is null");
}

#[test]
fn and_binds_tighter_than_or() {
    let f = Filter::parse(
        "operatingSystem eq 'Windows' and isEncrypted eq false or deviceName eq 'MAC-Finance-014'",
    )
    .unwrap();
    assert!(matches!(f, Filter::Or(..)));
    assert!(f.matches(&mac()));
}

#[test]
fn errors_name_the_column() {
    let err = |f: &str| Filter::parse(f).unwrap_err();
    let e = err("operatingSystem eq 'macOS' and deviceEnrolmentType eq 'x'");
    assert_eq!(e.column, 32, "{e}");
    assert!(e.message.contains("deviceEnrolmentType"), "{e}");
    assert_eq!(err("isEncrypted eq 'yes'").column, 16);
    assert_eq!(err("(operatingSystem eq 'macOS'").column, 1);
    assert_eq!(err("operatingSystem eq 'macOS").column, 20);
    assert_eq!(err("operatingSystem in ('macOS','iOS')").column, 17);
    assert!(err("operatingSystem in ('macOS')").message.contains("or"));
    assert_eq!(err("complianceState gt 'compliant'").column, 17);
    assert_eq!(err("lastSyncDateTime lt '2026-01-01'").column, 21);
    assert_eq!(err("lastSyncDateTime lt 2026-13-01").column, 21);
    assert_eq!(err("deviceName eq 'a' )").column, 19);
    assert_eq!(err("").column, 1);
    assert_eq!(
        err("deviceName eq 'é' and é").column,
        23,
        "columns count characters"
    );
    assert!(err(&"not ".repeat(500)).message.contains("nested"));
    assert!(err(&"(".repeat(500)).message.contains("nested"));
}

#[test]
fn the_properties_read_are_listed_once_for_select() {
    let f = Filter::parse(
        "deviceEnrollmentType eq 'x' or (isEncrypted eq true and deviceEnrollmentType ne 'y')",
    )
    .unwrap();
    assert_eq!(f.properties(), ["deviceEnrollmentType", "isEncrypted"]);
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ''é_-]{0,12}"
}

fn leaf() -> impl Strategy<Value = Filter> {
    let property = |kind: Kind| {
        proptest::sample::select(
            PROPERTIES
                .iter()
                .copied()
                .filter(move |p| p.kind == kind)
                .collect::<Vec<_>>(),
        )
    };
    let any_op = proptest::sample::select(CompareOp::ALL.to_vec());
    let eq_ne = proptest::sample::select(vec![CompareOp::Eq, CompareOp::Ne]);
    prop_oneof![
        (property(Kind::Text), any_op.clone(), text()).prop_map(|(property, op, s)| {
            Filter::Compare {
                property,
                op,
                value: Literal::Text(s),
            }
        }),
        (
            property(Kind::Enum),
            eq_ne.clone(),
            "[a-zA-Z]{1,10}",
            any::<bool>()
        )
            .prop_map(|(property, op, m, typed)| Filter::Compare {
                property,
                op,
                value: if typed {
                    Literal::Enum {
                        type_name: format!("microsoft.graph.{}", property.name),
                        member: m,
                    }
                } else {
                    Literal::Text(m)
                },
            }),
        (property(Kind::Bool), eq_ne.clone(), any::<bool>()).prop_map(|(property, op, b)| {
            Filter::Compare {
                property,
                op,
                value: Literal::Bool(b),
            }
        }),
        (property(Kind::Number), any_op.clone(), any::<i64>()).prop_map(|(property, op, n)| {
            Filter::Compare {
                property,
                op,
                value: Literal::Number(n),
            }
        }),
        (
            property(Kind::DateTime),
            any_op,
            0i64..4_000_000_000,
            -12i8..14
        )
            .prop_map(|(property, op, secs, hours)| Filter::Compare {
                property,
                op,
                value: Literal::DateTime(
                    time::OffsetDateTime::from_unix_timestamp(secs)
                        .unwrap()
                        .to_offset(time::UtcOffset::from_hms(hours, 0, 0).unwrap()),
                ),
            }),
        (property(Kind::Text), eq_ne).prop_map(|(property, op)| Filter::Compare {
            property,
            op,
            value: Literal::Null,
        }),
        (
            proptest::sample::select(TextFunction::ALL.to_vec()),
            property(Kind::Text),
            text()
        )
            .prop_map(|(function, property, value)| Filter::Call {
                function,
                property,
                value,
            }),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(5, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

proptest! {
    #[test]
    fn it_parses_what_it_prints(f in filter()) {
        let printed = f.to_string();
        let back = Filter::parse(&printed).map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
        prop_assert_eq!(back, f, "{}", printed);
    }

    #[test]
    fn it_never_panics_on_arbitrary_input(s in "\\PC{0,80}") {
        if let Ok(f) = Filter::parse(&s) {
            let _ = f.matches(&mac());
            let _ = f.to_string();
        }
    }

    #[test]
    fn it_never_panics_on_filter_shaped_input(
        s in "([a-zA-Z]{1,12}|eq|and|or|not|\\(|\\)|'[a-z' ]{0,4}|[0-9:T+-]{1,12}|,| ){0,30}"
    ) {
        if let Ok(f) = Filter::parse(&s) {
            let _ = f.matches(&mac());
            prop_assert_eq!(Filter::parse(&f.to_string()).ok(), Some(f));
        }
    }
}
