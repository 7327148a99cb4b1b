DROP TABLE consent_rules_state;
DROP TABLE emergency_access;
DROP TABLE consent_rules;
