DROP TABLE search_record_date;
