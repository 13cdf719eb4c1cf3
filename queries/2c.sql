-- AMPLab Big Data Benchmark query 2c: aggregation (SUBSTR(sourceIP, 1, 12))
SELECT SUBSTR(sourceIP, 1, 12), SUM(adRevenue) FROM uservisits GROUP BY SUBSTR(sourceIP, 1, 12);
