#!/usr/bin/env python3
"""Calling the coordinator's JobService from Python, with TLS and a token.

Generate the message modules once, from the repository root:

    mkdir -p /tmp/twist-py && protoc -I proto --python_out=/tmp/twist-py proto/twist/v1/*.proto

then:

    PYTHONPATH=/tmp/twist-py python3 client/python/twist_jobs.py \\
        --coordinator=HOST:7070 --tls_ca=creds/ca.pem --token_file=creds/client.token

It lists the jobs and the workers. Needs Debian's python3-grpcio and
python3-protobuf. The calls are made by method path (no generated gRPC stubs
are needed): any gRPC client can do the same from proto/twist/v1/.
"""
import argparse
import sys

import grpc

from twist.v1 import job_service_pb2


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", default="127.0.0.1:7070")
    parser.add_argument("--tls_ca", help="CA of the coordinator's certificate (TLS)")
    parser.add_argument("--token_file", help="file holding the client token")
    args = parser.parse_args()

    metadata = []
    if args.token_file:
        token = open(args.token_file).readline().strip()
        metadata.append(("authorization", f"Bearer {token}"))
    if args.tls_ca:
        credentials = grpc.ssl_channel_credentials(open(args.tls_ca, "rb").read())
        channel = grpc.secure_channel(args.coordinator, credentials)
    else:
        channel = grpc.insecure_channel(args.coordinator)

    def call(method, request, response_type):
        rpc = channel.unary_unary(
            f"/twist.v1.JobService/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString)
        return rpc(request, metadata=metadata, timeout=10)

    try:
        jobs = call("ListJobs", job_service_pb2.ListJobsRequest(),
                    job_service_pb2.ListJobsResponse)
        workers = call("ListWorkers", job_service_pb2.ListWorkersRequest(),
                       job_service_pb2.ListWorkersResponse)
    except grpc.RpcError as error:
        print(f"twist_jobs: {error.code().name}: {error.details()}", file=sys.stderr)
        sys.exit(1)
    print(f"{len(jobs.jobs)} jobs, {len(workers.workers)} workers")
    for job in jobs.jobs:
        print(f"job {job.id} {job.spec.name}: round {job.round}/{job.spec.rounds}")


if __name__ == "__main__":
    main()
