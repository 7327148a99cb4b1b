DROP TABLE emergency_access;
DROP TABLE consent_rules;
