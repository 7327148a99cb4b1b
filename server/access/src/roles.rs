//! The five roles of the product brief and the most scopes each may hold.
//!
//! A role's ceiling is the third set in every grant (requested ∩ client ∩
//! ceiling), so no client registration or request can give a user more than
//! their role allows: a patient never gets `user/` scopes, and no admin role
//! reaches clinical documents.

use std::fmt;
use std::str::FromStr;

use super::scope::{Context, Permissions, ResourceScope, Scope, ScopeSet};

/// The scope that unlocks this server's administrative operations
/// (onboarding hospitals, staff and patients).
pub const ADMIN_SCOPE: &str = "fhirledger.admin";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Onboards and offboards hospitals and assigns their admins.
    SolutionAdmin,
    /// Onboards and removes the doctors and patients of their hospital.
    HospitalAdmin,
    /// Uploads documents for their hospital's patients, reads what Consent permits.
    Doctor,
    /// Owns their documents and Consent, sees who accessed them.
    Patient,
    /// Reads and verifies the audit trail of a hospital or of the solution.
    ComplianceOfficer,
}

/// A role name that is not one of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role '{0}' (expected solution-admin, hospital-admin, doctor, patient or compliance-officer)")]
pub struct UnknownRole(pub String);

const RS: Permissions = Permissions::READ.union(Permissions::SEARCH);
const CRS: Permissions = Permissions::CREATE.union(RS);
const CRUS: Permissions = CRS.union(Permissions::UPDATE);
const CRUDS: Permissions = Permissions::ALL;

impl Role {
    pub const ALL: [Role; 5] = [
        Role::SolutionAdmin,
        Role::HospitalAdmin,
        Role::Doctor,
        Role::Patient,
        Role::ComplianceOfficer,
    ];

    /// The role's name as stored and configured.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SolutionAdmin => "solution-admin",
            Role::HospitalAdmin => "hospital-admin",
            Role::Doctor => "doctor",
            Role::Patient => "patient",
            Role::ComplianceOfficer => "compliance-officer",
        }
    }

    /// The most any token of a user with this role may hold.
    ///
    /// Every role may sign in (`openid fhirUser profile`), launch, and hold a
    /// refresh token. Resource scopes follow the brief: patients only ever
    /// `patient/` scopes on their own compartment; staff `user/` scopes,
    /// confined later to their organisation, and doctors also `patient/`
    /// scopes for the one patient a launch is about; admins no clinical data.
    pub fn ceiling(self) -> ScopeSet {
        let mut scopes = vec![
            Scope::OpenId,
            Scope::FhirUser,
            Scope::Profile,
            Scope::Launch,
            Scope::LaunchPatient,
            Scope::OfflineAccess,
            Scope::OnlineAccess,
        ];
        let user = |t: &str, p| Scope::Resource(ResourceScope::new(Context::User, Some(t), p));
        let patient =
            |t: &str, p| Scope::Resource(ResourceScope::new(Context::Patient, Some(t), p));
        let admin = Scope::Other(ADMIN_SCOPE.to_owned());
        scopes.extend(match self {
            Role::SolutionAdmin => vec![
                user("Organization", CRUDS),
                user("Practitioner", RS),
                user("PractitionerRole", RS),
                admin,
            ],
            Role::HospitalAdmin => vec![
                user("Practitioner", CRUDS),
                user("PractitionerRole", CRUDS),
                user("Patient", CRUDS),
                user("Organization", RS),
                admin,
            ],
            Role::Doctor => vec![
                user("DocumentReference", CRS),
                user("Binary", CRS),
                user("Patient", RS),
                user("Consent", RS),
                user("Practitioner", RS),
                user("PractitionerRole", RS),
                user("Organization", RS),
                // An app a doctor launches for one patient (EHR launch or
                // the picker) works on that patient's compartment.
                patient("DocumentReference", CRS),
                patient("Binary", CRS),
                patient("Patient", RS),
                patient("Consent", RS),
            ],
            Role::Patient => vec![
                patient("DocumentReference", CRS),
                patient("Binary", CRS),
                patient("Consent", CRUS),
                patient("Patient", RS),
                patient("AuditEvent", RS),
                // The group's directory, to name whom they share with
                // (see `decision::is_directory`).
                patient("Organization", RS),
                patient("Practitioner", RS),
                patient("PractitionerRole", RS),
            ],
            Role::ComplianceOfficer => vec![user("AuditEvent", RS), user("Organization", RS)],
        });
        scopes.into_iter().collect()
    }

    /// True when a user with this role must belong to an Organization
    /// (hospital admins, doctors and patients).
    ///
    /// Compliance officers may work for one hospital or for the whole
    /// solution, so they neither need one nor are refused one: check with
    /// [`Role::accepts_organization`], where `None` means solution-wide.
    pub fn needs_organization(self) -> bool {
        matches!(self, Role::HospitalAdmin | Role::Doctor | Role::Patient)
    }

    /// Whether a user of this role may have `organization` (`None` for no
    /// organisation): solution admins belong to none, compliance officers to
    /// one or none, everyone else to exactly one.
    pub fn accepts_organization<T>(self, organization: Option<T>) -> bool {
        match self {
            Role::SolutionAdmin => organization.is_none(),
            Role::ComplianceOfficer => true,
            _ => organization.is_some(),
        }
    }

    /// The resource types a user of this role may be as `fhirUser`.
    /// Admins and compliance officers may be modelled as a Person (no
    /// clinical role) or as a Practitioner.
    pub fn fhir_user_types(self) -> &'static [&'static str] {
        match self {
            Role::Patient => &["Patient"],
            Role::Doctor => &["Practitioner"],
            Role::SolutionAdmin | Role::HospitalAdmin | Role::ComplianceOfficer => {
                &["Person", "Practitioner"]
            }
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allow::Interaction;
    use crate::grant::{intersect, is_subset};

    const COMMON: &str =
        "openid fhirUser profile launch launch/patient offline_access online_access";

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>(), Ok(role));
        }
        assert_eq!("doctor".parse::<Role>(), Ok(Role::Doctor));
        assert_eq!(
            "Doctor".parse::<Role>(),
            Err(UnknownRole("Doctor".to_owned()))
        );
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn ceilings_are_as_specified() {
        for (role, specific) in [
            (
                Role::SolutionAdmin,
                "user/Organization.cruds user/Practitioner.rs user/PractitionerRole.rs fhirledger.admin",
            ),
            (
                Role::HospitalAdmin,
                "user/Practitioner.cruds user/PractitionerRole.cruds user/Patient.cruds user/Organization.rs fhirledger.admin",
            ),
            (
                Role::Doctor,
                "user/DocumentReference.crs user/Binary.crs user/Patient.rs user/Consent.rs user/Practitioner.rs user/PractitionerRole.rs user/Organization.rs \
                 patient/DocumentReference.crs patient/Binary.crs patient/Patient.rs patient/Consent.rs",
            ),
            (
                Role::Patient,
                "patient/DocumentReference.crs patient/Binary.crs patient/Consent.crus patient/Patient.rs patient/AuditEvent.rs \
                 patient/Organization.rs patient/Practitioner.rs patient/PractitionerRole.rs",
            ),
            (Role::ComplianceOfficer, "user/AuditEvent.rs user/Organization.rs"),
        ] {
            assert_eq!(role.ceiling().to_string(), format!("{COMMON} {specific}"), "{role}");
        }
    }

    #[test]
    fn patients_never_get_user_or_system_scopes() {
        let ceiling = Role::Patient.ceiling();
        let asked = ScopeSet::parse(
            "user/*.cruds system/*.cruds user/DocumentReference.read fhirledger.admin",
        )
        .unwrap();
        assert!(intersect(&asked, &ceiling).is_empty());
        assert!(ceiling
            .resource_scopes()
            .all(|s| s.context == Context::Patient));
    }

    #[test]
    fn admins_get_no_clinical_data() {
        let everything = ScopeSet::parse("user/*.* patient/*.* system/*.*").unwrap();
        for role in [
            Role::SolutionAdmin,
            Role::HospitalAdmin,
            Role::ComplianceOfficer,
        ] {
            let granted = intersect(&everything, &role.ceiling());
            for clinical in ["DocumentReference", "Binary", "Consent"] {
                for i in [Interaction::Read, Interaction::Search, Interaction::Create] {
                    assert!(!granted.allows(clinical, i), "{role} {clinical} {i:?}");
                }
            }
        }
        let solution = intersect(&everything, &Role::SolutionAdmin.ceiling());
        assert!(!solution.allows("Patient", Interaction::Read));
        assert!(solution.allows("Organization", Interaction::Create));
    }

    #[test]
    fn doctors_cannot_delete_or_edit_documents() {
        let granted = intersect(
            &ScopeSet::parse("user/DocumentReference.cruds").unwrap(),
            &Role::Doctor.ceiling(),
        );
        assert_eq!(granted.to_string(), "user/DocumentReference.crs");
        assert!(!granted.allows("DocumentReference", Interaction::Delete));
        assert!(!granted.allows("DocumentReference", Interaction::Update));
    }

    #[test]
    fn only_admin_roles_hold_the_admin_scope() {
        let admin = ScopeSet::parse(ADMIN_SCOPE).unwrap();
        for role in Role::ALL {
            let expected = matches!(role, Role::SolutionAdmin | Role::HospitalAdmin);
            assert_eq!(is_subset(&admin, &role.ceiling()), expected, "{role}");
        }
    }

    #[test]
    fn organisation_membership() {
        assert!(!Role::SolutionAdmin.needs_organization());
        assert!(!Role::ComplianceOfficer.needs_organization());
        assert!(Role::HospitalAdmin.needs_organization());
        assert!(Role::Doctor.needs_organization());
        assert!(Role::Patient.needs_organization());
        assert!(Role::SolutionAdmin.accepts_organization(None::<&str>));
        assert!(!Role::SolutionAdmin.accepts_organization(Some("org-1")));
        assert!(Role::ComplianceOfficer.accepts_organization(None::<&str>));
        assert!(Role::ComplianceOfficer.accepts_organization(Some("org-1")));
        assert!(!Role::Doctor.accepts_organization(None::<&str>));
        assert!(Role::Doctor.accepts_organization(Some("org-1")));
    }

    #[test]
    fn fhir_user_types() {
        assert_eq!(Role::Patient.fhir_user_types(), ["Patient"]);
        assert_eq!(Role::Doctor.fhir_user_types(), ["Practitioner"]);
        assert_eq!(
            Role::SolutionAdmin.fhir_user_types(),
            ["Person", "Practitioner"]
        );
        assert_eq!(
            Role::ComplianceOfficer.fhir_user_types(),
            ["Person", "Practitioner"]
        );
    }
}
