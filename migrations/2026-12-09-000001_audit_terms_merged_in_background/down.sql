SELECT gin_clean_pending_list('audit_events_by_term'::regclass);
ALTER INDEX audit_events_by_term SET (fastupdate = off);
ALTER INDEX audit_events_by_term RESET (gin_pending_list_limit);
