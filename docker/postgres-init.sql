-- One database per node of docker/compose.yaml: the hub (cn) and the nine centers.
-- PostgreSQL runs this once, when its data volume is first created
-- (/docker-entrypoint-initdb.d); add a database here when you add a node to compose.yaml.
CREATE DATABASE cattc_cn;
CREATE DATABASE cattc_th;
CREATE DATABASE cattc_la;
CREATE DATABASE cattc_kh;
CREATE DATABASE cattc_mm;
CREATE DATABASE cattc_vn;
CREATE DATABASE cattc_bn;
CREATE DATABASE cattc_id;
CREATE DATABASE cattc_my;
CREATE DATABASE cattc_ph;
